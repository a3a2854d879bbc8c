"""`train(cfg)`: the training loop, top to bottom — dataset, policy, optimizer, batches, steps,
checkpoints. Runs alone or under `torchrun` (DistributedDataParallel, one process per GPU). What a run is
built from is in build.py, what it reports in reports.py."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from apprentice.policies import (
    PolicyError,
    lora,
)
from apprentice.train import fsdp
from apprentice.train.build import (
    build_policy,
    check_reward_features,
    dataset_tasks,
    open_dataset,
    output_dir,
    with_deltas,
    with_tasks,
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
    Prefetcher,
    SampleOrder,
    StreamingBatches,
    build_frame_cache,
)
from apprentice.train.data_position import DATA_POSITION, data_position, resume_position
from apprentice.train.ema import EMA
from apprentice.train.progress import Progress
from apprentice.train.rank_report import data_report, write_rank_report
from apprentice.train.reports import (
    compile_cache_dir,
    enable_compile_cache,
    open_wandb,
    read_compile_report,
    read_metrics,
    report_captures,
    report_compile,
)
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


def train(cfg: TrainConfig) -> Path:
    """Train (or resume/fine-tune) a policy; returns the last checkpoint's pretrained_model dir."""
    if cfg.online.steps > 0:  # collect-and-train in sim (train/online.py), after any offline steps
        from apprentice.train.online import train_online

        return train_online(cfg)
    # --max_train_s is a slot of wall time for the whole run: opening the data and filling the frame cache count
    # (a fill of many episodes can take minutes, and a budget counted from the first step then overran the slot).
    run_start = time.perf_counter()
    rank, world, device = _init_distributed(cfg)
    if cfg.max_train_s is not None and world > 1:  # ranks would stop at different steps and hang in a collective
        raise TrainError("--max_train_s works in a single-process run; under torchrun use --steps")
    main = rank == 0
    out = output_dir(cfg)
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

    ds = open_dataset(cfg)
    policy = build_policy(cfg, ds, resume_from)
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
        enable_compile_cache()
        # dynamic=False: every batch has the same shape, so one specialized graph (no dynamic-shape kernels).
        model = torch.compile(model, mode=cfg.compile_mode, dynamic=False)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if use_bf16 and not cfg.fsdp:  # frozen weights kept in bf16 (SmolVLA's VLM), saved as before; FSDP: one dtype
        policy.store_frozen_in(torch.bfloat16)

    image_keys = list(config.image_features)
    accum = cfg.gradient_accumulation_steps
    seed = cfg.seed or 0
    image_shapes = {k: tuple(f.shape) for k, f in config.image_features.items()}
    state_dir = resume_from / STATE if resume_from is not None else None
    if cfg.dataset.streaming:
        source: Any = StreamingBatches(
            with_deltas(ds, config, cfg),
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
    wandb_run = open_wandb(cfg, out) if main and cfg.wandb.enable else None
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
        next_batch = with_tasks(source.next, dataset_tasks(list(ds.meta.tasks), cfg.task, cfg.task_override))
    try:
        policy.train()
        for step in range(start_step + 1, cfg.steps + 1):
            step_fn(next_batch)
            out_of_time = cfg.max_train_s is not None and time.perf_counter() - run_start >= cfg.max_train_s
            last_step = step == cfg.steps or out_of_time
            policy.update()  # EMA target networks (TD-MPC); a no-op for most policies
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update(policy)
            if step == start_step + warm_steps:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if main:
                    report_compile(out, cfg, step_fn, time.perf_counter() - loop_start, warm_steps)
                window_start, timed_steps = time.perf_counter(), 0
            else:
                timed_steps += 1
            window_steps += 1
            # Reading the loss forces a GPU sync, so it happens only every log_freq steps.
            if step % cfg.log_freq == 0 or last_step:
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
            if cfg.save_checkpoint and (step % cfg.save_freq == 0 or last_step):
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
            if out_of_time:
                if main:
                    log.info("stopped at step %d of %d: --max_train_s=%g s reached", step, cfg.steps, cfg.max_train_s)
                break
        if main and cfg.cuda_graphs and step > start_step + warm_steps:
            report_captures(out, step_fn)  # a phased policy (VQ-BeT) captured again after the warm-up
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


__all__ = ["TRAIN_CONFIG", "compile_cache_dir", "read_compile_report", "read_metrics", "train"]
