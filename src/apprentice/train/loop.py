"""`train(cfg)`: the training loop, top to bottom — dataset, policy, optimizer, batches, steps,
checkpoints. Runs alone or under `torchrun` (DistributedDataParallel, one process per GPU)."""

from __future__ import annotations

import contextlib
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
    make_config,
    make_policy,
    policy_class,
    stats_to_tensors,
)
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
    to_device,
)
from apprentice.train.data_position import DATA_POSITION, data_position, resume_position
from apprentice.train.progress import Progress

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
        base = load_policy(pretrained, device="cpu")
        fields = {**base.config.to_dict(), **overrides}
        if input_shapes:
            fields["input_features"] = apply_input_shapes(base.config.input_features, input_shapes)
        fields.pop("type")
        config = make_config(base.config.type, **fields)
        policy = policy_class(config.type)(config, stats)
        try:
            policy.load_state_dict(base.state_dict())
        except RuntimeError as exc:
            raise TrainError(
                f"--policy.pretrained_path={pretrained}: weights do not fit this config ({exc})"
            ) from exc
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
        return make_policy(make_config(cfg.policy_type, **overrides), stats).train()
    except PolicyError as exc:
        raise TrainError(str(exc)) from exc


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
    config.device = device.type
    if cfg.freeze_backbone:
        for p in policy.backbone_parameters():
            p.requires_grad_(False)
    channels_last = cfg.channels_last and device.type == "cuda"
    policy.to(device)
    if channels_last:
        policy.to(memory_format=torch.channels_last)
    optimizer = policy.make_optimizer(lr=config.optimizer_lr, fused=device.type == "cuda")
    scheduler = policy.make_scheduler(optimizer, cfg.steps)
    start_step = load_training_state(resume_from, optimizer, scheduler) if resume_from is not None else 0
    model: torch.nn.Module = policy
    if world > 1:
        model = DistributedDataParallel(
            policy,
            device_ids=[device.index] if device.type == "cuda" else None,
            # A policy that trains only part of itself per step (VQ-BeT's two phases) says so.
            find_unused_parameters=getattr(policy, "find_unused_parameters", False),
        )
    if cfg.compile:
        model = torch.compile(model)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    )

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

    out.mkdir(parents=True, exist_ok=True)
    metrics = (out / "logs" / "train.jsonl") if main else None
    if metrics is not None:
        metrics.parent.mkdir(exist_ok=True)
    wandb_run = _wandb(cfg, out) if main and cfg.wandb.enable else None
    train_dict = cfg.to_dict()
    train_dict["output_dir"] = str(out)
    progress = Progress(cfg.steps, start_step, enabled=main)
    params = [p for p in policy.parameters() if p.requires_grad]
    loss_sum = torch.zeros((), device=device)
    window_start, window_steps = time.perf_counter(), 0
    last_dir = resume_from / PRETRAINED if resume_from is not None else None
    step = start_step
    try:
        policy.train()
        for step in range(start_step + 1, cfg.steps + 1):
            for micro in range(accum):
                batch = to_device(source.next(), device, image_keys, channels_last)
                sync = contextlib.nullcontext() if micro == accum - 1 or world == 1 else model.no_sync()
                with sync:
                    with autocast():
                        loss, _ = model(batch)
                    (loss / accum).backward()
                loss_sum += loss.detach() / accum
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm, error_if_nonfinite=False)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            policy.update()  # EMA target networks (TD-MPC); a no-op for most policies
            if scheduler is not None:
                scheduler.step()
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
                    "grad_norm": float(grad_norm),
                    "lr": optimizer.param_groups[0]["lr"],
                    "samples_per_s": window_steps * cfg.batch_size * accum * world / max(elapsed, 1e-9),
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
                window_start, window_steps = time.perf_counter(), 0
            else:
                progress.tick(step)
            if cfg.save_checkpoint and (step % cfg.save_freq == 0 or step == cfg.steps):
                if main:
                    position = data_position(source, per_epoch, cfg.batch_size, seed, world)
                    last_dir = save_checkpoint(
                        out, step, policy, optimizer, scheduler, train_dict, {DATA_POSITION: position}
                    )
                if world > 1:
                    dist.barrier()
    finally:
        source.close()
        progress.close()
        if wandb_run is not None:
            wandb_run.finish()
    if last_dir is None:
        last_dir = out / "checkpoints" / "last" / PRETRAINED
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return last_dir


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


__all__ = ["TRAIN_CONFIG", "read_metrics", "train"]
