"""`train(cfg)`: the training loop, top to bottom — dataset, policy, optimizer, batches, steps,
checkpoints. Runs alone or under `torchrun` (DistributedDataParallel, one process per GPU)."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from apprentice.policies import (
    IMAGENET_STATS,
    Policy,
    PolicyError,
    features_from_dataset,
    load_policy,
    lora,
    make_config,
    make_policy,
    policy_class,
    stats_to_tensors,
)
from apprentice.policies.pretrained import resolve_pretrained
from apprentice.train import fsdp
from apprentice.train.checkpoint import (
    PRETRAINED,
    STATE,
    TRAIN_CONFIG,
    load_training_state,
    resolve_checkpoint,
    save_checkpoint,
)
from apprentice.train.config import TrainConfig, TrainError
from apprentice.train.data import (
    REWARD,
    Prefetcher,
    SampleOrder,
    StreamingBatches,
    apply_input_shapes,
    build_frame_cache,
    sample_deltas,
)
from apprentice.train.data_position import DATA_POSITION, data_position, resume_position
from apprentice.train.ema import EMA
from apprentice.train.progress import Progress
from apprentice.train.rank_report import data_report, write_rank_report
from apprentice.train.step import TrainStep

log = logging.getLogger("apprentice.train")


def _init_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(cfg.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--policy.device=cuda but torch sees no CUDA device; use --policy.device=cpu")
        device = torch.device("cuda", local if world > 1 else (device.index or 0))
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _open_dataset(cfg: TrainConfig) -> Any:
    from apprentice.dataset import DatasetError, LeRobotDataset

    source = cfg.dataset.root or cfg.dataset.repo_id
    if not source:
        raise TrainError("no dataset: pass --dataset.root=<dir> or --dataset.repo_id=<user/name>")
    try:
        if cfg.dataset.root and cfg.dataset.repo_id and not (Path(cfg.dataset.root) / "meta/info.json").is_file():
            from apprentice.dataset.hub import pull  # as lerobot: --dataset.root is where the repo is put

            pull(cfg.dataset.repo_id, root=cfg.dataset.root, revision=cfg.dataset.revision)
        return LeRobotDataset(source, episodes=cfg.dataset.episodes, revision=cfg.dataset.revision)
    except DatasetError as exc:
        raise TrainError(f"dataset {source}: {exc}") from exc


def _dataset_stats(ds: Any, use_imagenet: bool) -> dict[str, dict[str, torch.Tensor]]:
    stats = {k: dict(v) for k, v in ds.meta.stats.items()}
    if use_imagenet:
        for key in ds.camera_keys:
            stats.setdefault(key, {}).update(IMAGENET_STATS)
    return stats_to_tensors(stats)


def _with_deltas(ds: Any, config: Any, cfg: TrainConfig) -> Any:
    """For the streaming path: the dataset re-opened with LeRobot's delta_timestamps for this policy."""
    from apprentice.dataset import LeRobotDataset

    deltas = {k: [i / ds.fps for i in v] for k, v in sample_deltas(config).items()}
    return LeRobotDataset(ds.root, episodes=cfg.dataset.episodes, delta_timestamps=deltas)


def check_reward_features(config: Any, features: dict[str, Any], source: str) -> None:
    """A policy that learns from rewards (TD-MPC) needs next.reward in the data; say so before training."""
    if config.reward_delta_indices is not None and REWARD not in features:
        raise TrainError(
            f"{source}: --policy.type={config.type} learns from rewards but the dataset has no {REWARD!r} "
            f"feature (it has {sorted(features)}); record it with rewards (next.reward, next.done) or train "
            "online in sim (--online.steps, --env.type)"
        )


def _build_policy(cfg: TrainConfig, ds: Any, resume_from: Path | None) -> Policy:
    if resume_from is not None:
        return load_policy(resume_from / PRETRAINED, device="cpu").train()
    inputs, outputs = features_from_dataset(ds.features)
    stats = _dataset_stats(ds, cfg.dataset.use_imagenet_stats)
    overrides = dict(cfg.policy_overrides)
    input_shapes = overrides.pop("input_shapes", None)  # --policy.input_shapes.<camera>=[C,H,W]
    inputs = apply_input_shapes(inputs, input_shapes)
    pretrained = overrides.get("pretrained_path")
    if pretrained:  # fine-tuning: the pretrained config and weights, this dataset's stats
        try:
            directory = resolve_pretrained(pretrained)
            base = load_policy(directory, device="cpu")
        except PolicyError as exc:
            raise TrainError(f"--policy.pretrained_path={pretrained}: {exc}") from exc
        fields = {**base.config.to_dict(), **overrides}
        if input_shapes:
            fields["input_features"] = apply_input_shapes(base.config.input_features, input_shapes)
        fields.pop("type")
        config = make_config(base.config.type, **fields)
        policy = policy_class(config.type).from_checkpoint(config, stats, directory)
        policy.inherit(base)
        try:
            if lora.has_lora(base):  # continue training the adapter it carries (lerobot: is_trainable=True)
                lora.inject(policy, base.lora_config, base.lora_full_training)
            policy.load_state_dict(base.state_dict())
            if config.use_peft:
                lora.apply_lora(policy, cfg.peft)
        except RuntimeError as exc:
            raise TrainError(
                f"--policy.pretrained_path={pretrained}: weights do not fit this config ({exc})"
            ) from exc
        except PolicyError as exc:
            raise TrainError(str(exc)) from exc
        return policy.train()
    if not cfg.policy_type:
        raise TrainError(
            "no policy: pass --policy.type=act (or diffusion), or --policy.pretrained_path=<dir>"
        )
    overrides.setdefault(
        "input_features", {k: {"type": f.type, "shape": list(f.shape)} for k, f in inputs.items()}
    )
    overrides.setdefault(
        "output_features", {k: {"type": f.type, "shape": list(f.shape)} for k, f in outputs.items()}
    )
    try:
        policy = make_policy(make_config(cfg.policy_type, **overrides), stats)
        if policy.config.use_peft:
            lora.apply_lora(policy, cfg.peft)  # refuses: LoRA needs --policy.pretrained_path
        return policy.train()
    except PolicyError as exc:
        raise TrainError(str(exc)) from exc


def dataset_tasks(tasks: list[str], task: str | None, override: bool) -> list[str]:
    """The instruction per task_index: the dataset's, `--task` for those that are empty, or `--task` for all
    with --task_override=true."""
    if task is not None and not task.strip():
        raise TrainError('--task="" is empty; give the instruction, e.g. --task="pick up the red cube"')
    if override and task is None:
        raise TrainError("--task_override=true needs --task=\"…\" (the instruction that replaces the dataset's)")
    if override:
        return [task] * max(1, len(tasks))
    out = [t if t and t.strip() else task for t in tasks]
    missing = [i for i, t in enumerate(out) if t is None]
    if missing:
        raise TrainError(
            f"task_index {missing[:5]} in meta/tasks.parquet have no instruction and no --task was given; "
            'pass --task="…" (used for every episode without one)'
        )
    return out


def _output_dir(cfg: TrainConfig) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    return Path("outputs/train") / f"{stamp}_{cfg.job_name or cfg.policy_type or 'policy'}"


def train(cfg: TrainConfig) -> Path:
    """Train (or resume/fine-tune) a policy; returns the last checkpoint's pretrained_model dir."""
    if cfg.online.steps > 0:  # collect-and-train in sim (train/online.py), after any offline steps
        from apprentice.train.online import train_online

        return train_online(cfg)
    rank, world, device = _init_distributed(cfg)
    main = rank == 0
    out = _output_dir(cfg)
    resume_from = (
        resolve_checkpoint(Path(cfg.output_dir) if cfg.output_dir else None, cfg.config_path)
        if cfg.resume
        else None
    )
    if resume_from is not None and not cfg.output_dir:
        out = resume_from.parent.parent
    if resume_from is None and (out / "checkpoints").exists():
        raise TrainError(
            f"{out} already holds checkpoints; pass --resume=true to continue it or choose another "
            "--output_dir"
        )
    if cfg.seed is not None:
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        # Same switches LeRobot turns on; plus TF32 for the fp32 parts.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    ds = _open_dataset(cfg)
    policy = _build_policy(cfg, ds, resume_from)
    config = policy.config
    check_reward_features(config, ds.features, f"dataset {cfg.dataset.root or cfg.dataset.repo_id}")
    if getattr(config, "uses_language", False):  # language-conditioned (SmolVLA): the dataset's tasks
        try:
            policy.set_tasks(dataset_tasks(ds.meta.tasks, cfg.task, cfg.task_override))
        except PolicyError as exc:
            raise TrainError(f"dataset {cfg.dataset.root or cfg.dataset.repo_id}: {exc}") from exc
    config.device = device.type
    if cfg.freeze_backbone:
        for p in policy.backbone_parameters():
            p.requires_grad_(False)
    unsupported = getattr(policy, "cuda_graphs_unsupported", None)
    if cfg.cuda_graphs and unsupported:
        raise TrainError(f"--cuda_graphs=true: --policy.type={config.type} {unsupported}; drop the flag")
    if cfg.cuda_graphs and (device.type != "cuda" or world > 1):
        raise TrainError(
            "--cuda_graphs=true needs one CUDA device without torchrun (got "
            f"{device.type}, {world} process(es)); drop the flag or use --compile=true"
        )
    if cfg.grad_checkpointing:
        try:
            policy.set_grad_checkpointing(True)
        except PolicyError as exc:
            raise TrainError(f"--grad_checkpointing=true: {exc}") from exc
    channels_last = cfg.channels_last and device.type == "cuda"
    policy.to(device)
    if channels_last:
        policy.to(memory_format=torch.channels_last)
    if cfg.fsdp and lora.has_lora(policy):
        raise TrainError("--fsdp=true with LoRA (--policy.use_peft=true) is not supported; use DDP (drop --fsdp)")
    if cfg.fsdp:
        _check_fsdp(cfg, world)
        fsdp.shard(policy)  # before the optimizer: it holds the sharded parameters
    # After resuming, pretrained_model/ held the EMA weights if EMA was on: the live ones come back here.
    keep_ema = cfg.ema.enable and main  # the shadow lives on rank 0 only (DDP ranks hold the same weights)
    if resume_from is not None:
        ema = EMA.resume(policy, cfg.ema, resume_from / STATE, keep=keep_ema)
    else:
        ema = EMA(policy, cfg.ema) if keep_ema else None
    optimizer = policy.make_optimizer(lr=config.optimizer_lr, fused=device.type == "cuda")
    scheduler = policy.make_scheduler(optimizer, cfg.steps)
    load_optim = (lambda plain: fsdp.load_optimizer(policy, optimizer, plain)) if cfg.fsdp else None
    start_step = load_training_state(resume_from, optimizer, scheduler, load_optim) if resume_from is not None else 0
    for group in optimizer.param_groups:  # a checkpoint from a captured run carries capturable=True
        group["capturable"] = cfg.cuda_graphs
    model: torch.nn.Module = policy
    if world > 1 and not cfg.fsdp:
        model = DistributedDataParallel(
            policy,
            device_ids=[device.index] if device.type == "cuda" else None,
            # A policy that trains only part of itself per step (VQ-BeT's two phases) says so.
            find_unused_parameters=getattr(policy, "find_unused_parameters", False),
        )
    if cfg.compile:
        _compile_cache()
        # dynamic=False: every batch has the same shape, so one specialized graph (no dynamic-shape kernels).
        model = torch.compile(model, mode=cfg.compile_mode, dynamic=False)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")

    image_keys = list(config.image_features)
    accum = cfg.gradient_accumulation_steps
    seed = cfg.seed or 0
    image_shapes = {k: tuple(f.shape) for k, f in config.image_features.items()}
    state_dir = resume_from / STATE if resume_from is not None else None
    if cfg.dataset.streaming:
        source: Any = StreamingBatches(
            _with_deltas(ds, config, cfg),
            cfg.batch_size,
            cfg.num_workers,
            seed,
            rank,
            world,
            drop_n_last_frames=getattr(config, "drop_n_last_frames", 0),
            image_shapes=image_shapes,
        )
        source.skip_to(resume_position(state_dir, start_step * accum, source.per_epoch, cfg.batch_size))
        per_epoch = source.per_epoch
    else:
        t0 = time.perf_counter()
        cache = build_frame_cache(cfg, ds, config, device, log.info if main else lambda _: None)
        if main:
            log.info(
                "decoded %d frames x %d cameras into a %s %s cache in %.1fs",
                ds.num_frames,
                len(image_keys),
                cache.device,
                cache.storage,
                time.perf_counter() - t0,
            )
        order = SampleOrder(len(cache), cfg.batch_size, seed, rank, world, device=cache.device)
        per_epoch = order.per_epoch
        start = resume_position(state_dir, start_step * accum, per_epoch, cfg.batch_size)
        source = Prefetcher(cache, order.batches(start), start=start)

    rank_data = data_report(source, ds.num_frames, per_epoch * cfg.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    metrics = (out / "logs" / "train.jsonl") if main else None
    if metrics is not None:
        metrics.parent.mkdir(exist_ok=True)
    wandb_run = _wandb(cfg, out) if main and cfg.wandb.enable else None
    train_dict = cfg.to_dict()
    train_dict["output_dir"] = str(out)
    progress = Progress(cfg.steps, start_step, enabled=main)
    params = [p for p in policy.parameters() if p.requires_grad]
    step_fn = TrainStep(
        model,
        params,
        optimizer,
        device=device,
        image_keys=image_keys,
        grad_clip_norm=cfg.grad_clip_norm,
        bf16=use_bf16,
        channels_last=channels_last,
        accum=accum,
        no_sync=(lambda: fsdp.no_gradient_sync(policy)) if cfg.fsdp else model.no_sync if world > 1 else None,
        capture=cfg.cuda_graphs,
    )
    # Steps until the step is steady: compilation, cuDNN autotuning and graph capture happen in them.
    warm_steps = step_fn.warmup + 1 if cfg.cuda_graphs else 1
    loss_sum = step_fn.loss_sum
    window_start, window_steps, timed_steps = time.perf_counter(), 0, 0
    loop_start = time.perf_counter()
    last_dir = resume_from / PRETRAINED if resume_from is not None else None
    step = start_step
    next_batch = source.next
    if getattr(config, "uses_task", False):  # language-conditioned policies: the batch's task strings
        next_batch = _with_tasks(source.next, dataset_tasks(list(ds.meta.tasks), cfg.task, cfg.task_override))
    try:
        policy.train()
        for step in range(start_step + 1, cfg.steps + 1):
            step_fn(next_batch)
            policy.update()  # EMA target networks (TD-MPC); a no-op for most policies
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update(policy)
            if step == start_step + warm_steps:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if main:
                    _report_compile(out, cfg, step_fn, time.perf_counter() - loop_start, warm_steps)
                window_start, timed_steps = time.perf_counter(), 0
            else:
                timed_steps += 1
            window_steps += 1
            # Reading the loss forces a GPU sync, so it happens only every log_freq steps.
            if step % cfg.log_freq == 0 or step == cfg.steps:
                mean_loss = float(loss_sum.item()) / window_steps
                if world > 1:
                    t = torch.tensor([mean_loss], device=device)
                    dist.all_reduce(t)
                    mean_loss = float(t.item()) / world
                elapsed = time.perf_counter() - window_start
                record = {
                    "step": step,
                    "loss": mean_loss,
                    "grad_norm": float(step_fn.grad_norm),
                    "lr": float(optimizer.param_groups[0]["lr"]),
                    "samples_per_s": timed_steps * cfg.batch_size * accum * world / max(elapsed, 1e-9),
                }
                if not math.isfinite(mean_loss):
                    raise TrainError(
                        f"loss is {mean_loss} at step {step}; lower --policy.lr or check the dataset"
                    )
                if metrics is not None:
                    with metrics.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
                if wandb_run is not None:
                    wandb_run.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step)
                progress.update(step, record)
                loss_sum.zero_()
                window_start, window_steps, timed_steps = time.perf_counter(), 0, 0
            else:
                progress.tick(step)
            if cfg.save_checkpoint and (step % cfg.save_freq == 0 or step == cfg.steps):
                # FSDP: every rank takes part in gathering the full state dicts; rank 0 writes them.
                model_state, optim_state = fsdp.full_states(policy, optimizer) if cfg.fsdp else (None, None)
                if main:
                    position = data_position(source, per_epoch, cfg.batch_size, seed, world)
                    last_dir = save_checkpoint(
                        out, step, policy, optimizer, scheduler, train_dict, {DATA_POSITION: position}, ema=ema,
                        model_state=model_state, optimizer_state=optim_state,
                    )
                if world > 1:
                    dist.barrier()
        if main and cfg.cuda_graphs and step > start_step + warm_steps:
            _report_captures(out, step_fn)  # a phased policy (VQ-BeT) captured again after the warm-up
    finally:
        source.close()
        progress.close()
        if wandb_run is not None:
            wandb_run.finish()
    if last_dir is None:
        last_dir = out / "checkpoints" / "last" / PRETRAINED
    write_rank_report(out, rank, world, device, rank_data, step, time.perf_counter() - loop_start)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return last_dir


def _check_fsdp(cfg: TrainConfig, world: int) -> None:
    problems = [
        (world < 2, f"--fsdp=true shards across torchrun processes, but this run has {world}; start it with "
                    "torchrun --nproc_per_node=N (N >= 2) or drop --fsdp"),
        (cfg.ema.enable, "--fsdp=true with --ema.enable=true is not supported (the EMA shadow is unsharded)"),
        (cfg.cuda_graphs, "--fsdp=true with --cuda_graphs=true is not supported; drop one"),
    ]
    for bad, message in problems:
        if bad:
            raise TrainError(message)


def _with_tasks(next_batch: Any, tasks: list[str]) -> Any:
    """A batch source whose batches carry `task` (list[str]) from their task_index, as lerobot's do."""

    def wrapped() -> dict[str, Any]:
        batch = next_batch()
        if "task" not in batch and "task_index" in batch:
            batch["task"] = [tasks[int(i)] for i in batch["task_index"].reshape(-1).tolist()]
        return batch

    return wrapped


def compile_cache_dir() -> Path:
    """Where torch.compile keeps its artifacts across runs (inductor's FX-graph and AOTAutograd caches,
    Triton kernels): $TORCHINDUCTOR_CACHE_DIR if set, else $XDG_CACHE_HOME/apprentice/torchinductor
    (~/.cache/...) — not torch's default under /tmp, which does not survive a reboot."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "apprentice" / "torchinductor"


def _compile_cache() -> None:
    root = compile_cache_dir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    if hasattr(functorch_config, "enable_autograd_cache"):
        functorch_config.enable_autograd_cache = True


def _report_compile(out: Path, cfg: TrainConfig, step_fn: TrainStep, seconds: float, steps: int) -> None:
    """The warm-up cost (compilation, autotuning, capture) apart from the steady samples/s."""
    info = {
        "compile_s": round(seconds, 3),
        "warmup_steps": steps,
        "compile": cfg.compile,
        "compile_mode": cfg.compile_mode if cfg.compile else None,
        "cuda_graphs": cfg.cuda_graphs,
        "captured": step_fn.captured,
        "captures": step_fn.captures,
        "capture_s": round(step_fn.capture_s, 3),
        "capture_error": step_fn.fallback,
        "cache_dir": str(compile_cache_dir()) if cfg.compile else None,
    }
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / "compile.json").write_text(json.dumps(info, indent=2))
    log.info(
        "warm-up (%s) took %.1fs over %d step(s)%s",
        "+".join(k for k, on in (("compile", cfg.compile), ("cuda graph", step_fn.captured)) if on) or "eager",
        seconds,
        steps,
        f"; capture failed: {step_fn.fallback}" if step_fn.fallback else "",
    )


def _report_captures(out: Path, step_fn: TrainStep) -> None:
    """The capture fields of logs/compile.json as they stand at the end of the run."""
    path = out / "logs" / "compile.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    info.update(
        captured=step_fn.captured,
        captures=step_fn.captures,
        capture_s=round(step_fn.capture_s, 3),
        capture_error=step_fn.fallback,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))


def read_compile_report(output_dir: str | Path) -> dict[str, Any]:
    """logs/compile.json of a run: compile_s (warm-up wall time) and how the step ran."""
    return json.loads((Path(output_dir) / "logs" / "compile.json").read_text())


def _wandb(cfg: TrainConfig, out: Path) -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise TrainError("--wandb.enable=true needs the wandb package: pip install wandb") from exc
    return wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        notes=cfg.wandb.notes,
        id=cfg.wandb.run_id,
        mode=cfg.wandb.mode,
        name=cfg.job_name,
        dir=str(out),
        config=cfg.to_dict(),
        resume="allow",
    )


def read_metrics(output_dir: str | Path) -> list[dict[str, float]]:
    """The logged training records (one per log step) of a run."""
    path = Path(output_dir) / "logs" / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["TRAIN_CONFIG", "compile_cache_dir", "read_compile_report", "read_metrics", "train"]
