"""`train_online(cfg)`: offline updates on the dataset (if any), then LeRobot's online loop — collect
episodes in sim with the current policy into a replay buffer, update on batches mixing replay and
dataset samples (`--online.sampling_ratio`), repeat until `--online.steps` updates are done.

Env-agnostic: the env comes from `apprentice.sim` by `--env.type/--env.task`; the loop reads only
observation keys, the reward and `info["is_success"]`. Checkpoints are the offline trainer's layout,
plus `training_state/replay_buffer.safetensors` so `--resume=true` continues with the same buffer.
Single process (rollouts and updates alternate on one device).
"""

from __future__ import annotations

import contextlib
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

from apprentice.policies import Policy, PolicyError, features_from_dataset, load_policy, make_config, make_policy
from apprentice.rl import ReplayBuffer, collect_episodes
from apprentice.train.build import build_policy, check_reward_features, open_dataset, output_dir
from apprentice.train.checkpoint import PRETRAINED, STATE, load_training_state, resolve_checkpoint, save_checkpoint
from apprentice.train.config import TrainConfig, TrainError
from apprentice.train.data import FrameCache, sample_deltas, to_device

log = logging.getLogger("apprentice.train")
BUFFER_FILE = "replay_buffer.safetensors"


def _make_env(cfg: TrainConfig, config: Any, seed: int) -> Any:
    from apprentice.sim import SimError, make_env
    from apprentice.sim.cli import resolve_task

    kwargs: dict[str, Any] = {"render": bool(config.image_features) if config is not None else False}
    if cfg.env.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.env.max_episode_steps
    for ft in config.image_features.values() if config is not None else []:
        kwargs["image_height"], kwargs["image_width"] = int(ft.shape[1]), int(ft.shape[2])
    try:
        return make_env(resolve_task(cfg.env.type, cfg.env.task), seed=seed, **kwargs)
    except SimError as exc:
        raise TrainError(f"--env.type={cfg.env.type} --env.task={cfg.env.task}: {exc}") from exc


def _policy_from_env(cfg: TrainConfig, env: Any) -> Policy:
    """No dataset: features from the env, action MIN_MAX stats from its action space bounds."""
    pretrained = cfg.policy_overrides.get("pretrained_path")
    if pretrained:
        return load_policy(pretrained, device="cpu").train()
    if not cfg.policy_type:
        raise TrainError("no policy: pass --policy.type=tdmpc (or --policy.pretrained_path=<dir>)")
    inputs, outputs = features_from_dataset(env.features)
    overrides = dict(cfg.policy_overrides)
    overrides.setdefault("input_features", {k: {"type": f.type, "shape": list(f.shape)} for k, f in inputs.items()})
    overrides.setdefault("output_features", {k: {"type": f.type, "shape": list(f.shape)} for k, f in outputs.items()})
    low = torch.as_tensor(env.action_space.low, dtype=torch.float32)
    high = torch.as_tensor(env.action_space.high, dtype=torch.float32)
    if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
        raise TrainError(f"--env.type={cfg.env.type}: unbounded action space; train from a dataset for its stats")
    try:
        return make_policy(make_config(cfg.policy_type, **overrides), {"action": {"min": low, "max": high}}).train()
    except PolicyError as exc:
        raise TrainError(str(exc)) from exc


def _check_env_fits(config: Any, env: Any, cfg: TrainConfig) -> None:
    spaces = env.observation_space.spaces
    missing = [k for k in config.input_features if k not in spaces]
    if missing:
        raise TrainError(
            f"--env.type={cfg.env.type}: the policy needs {missing}, the env gives {sorted(spaces)}; "
            "train on a dataset recorded in this env"
        )
    if tuple(config.action_feature.shape) != tuple(env.action_space.shape):
        raise TrainError(
            f"--env.type={cfg.env.type}: the policy outputs actions of shape {config.action_feature.shape}, "
            f"the env takes {env.action_space.shape}"
        )


def train_online(cfg: TrainConfig) -> Path:
    """Offline `--steps` on the dataset (if given), then `--online.steps` collect-and-update; returns the last
    checkpoint's pretrained_model dir."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainError("online training runs in one process; start it without torchrun")
    device = torch.device(cfg.device)
    seed = cfg.seed or 0
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    out = output_dir(cfg)
    resume_from = (
        resolve_checkpoint(Path(cfg.output_dir) if cfg.output_dir else None, cfg.config_path) if cfg.resume else None
    )
    if resume_from is None and (out / "checkpoints").exists():
        raise TrainError(f"{out} already holds checkpoints; pass --resume=true or choose another --output_dir")

    ds = open_dataset(cfg) if (cfg.dataset.root or cfg.dataset.repo_id) else None
    if cfg.steps > 0 and ds is None:
        raise TrainError(f"--steps={cfg.steps} offline updates need a dataset (--dataset.root); or pass --steps=0")
    env_seed = cfg.online.env_seed if cfg.online.env_seed is not None else seed
    if resume_from is not None:
        policy = load_policy(resume_from / PRETRAINED, device="cpu").train()
        env = _make_env(cfg, policy.config, env_seed)
    elif ds is not None:
        policy = build_policy(cfg, ds, None)
        env = _make_env(cfg, policy.config, env_seed)
    else:
        env = _make_env(cfg, None, env_seed)
        policy = _policy_from_env(cfg, env)
        if policy.config.image_features:  # the policy looks at images: an env that renders them
            env.close()
            env = _make_env(cfg, policy.config, env_seed)
    config = policy.config
    config.device = device.type
    if ds is not None:
        check_reward_features(config, ds.features, f"dataset {cfg.dataset.root or cfg.dataset.repo_id}")
    _check_env_fits(config, env, cfg)
    policy.to(device)
    optimizer = policy.make_optimizer(lr=config.optimizer_lr, fused=device.type == "cuda")
    total = cfg.steps + cfg.online.steps
    scheduler = policy.make_scheduler(optimizer, total)
    step = load_training_state(resume_from, optimizer, scheduler) if resume_from is not None else 0
    buffer = ReplayBuffer(cfg.online.buffer_capacity)
    if resume_from is not None and (resume_from / STATE / BUFFER_FILE).is_file():
        buffer = ReplayBuffer.load(resume_from / STATE / BUFFER_FILE)

    deltas = sample_deltas(config)
    image_keys = list(config.image_features)
    keys = set(deltas) | set(config.input_features)
    cache = None
    if ds is not None:
        numeric = list(dict.fromkeys(k for k in [*config.input_features, *deltas] if k not in image_keys))
        cache = FrameCache(ds, numeric, image_keys, deltas, getattr(config, "drop_n_last_frames", 0), "cpu")
    rng = np.random.default_rng(seed + step)

    def batch_of(n_online: int) -> dict[str, torch.Tensor]:
        parts = []
        if n_online:
            sample = buffer.sample(n_online, deltas, rng)
            parts.append({k: torch.from_numpy(v) for k, v in sample.items() if k.removesuffix("_is_pad") in keys})
        if cache is not None and cfg.batch_size - n_online:
            ids = torch.from_numpy(rng.integers(0, len(cache), size=cfg.batch_size - n_online))
            parts.append(cache.gather(ids))
        if len(parts) == 2:  # replay frames shaped like the dataset's (a shape-[1] column comes as (N,))
            parts[0] = {k: v.reshape(v.shape[0], *parts[1][k].shape[1:]) for k, v in parts[0].items()}
        merged = {k: torch.cat([p[k].to(parts[-1][k].dtype) for p in parts]) for k in parts[0]}
        return to_device(merged, device, image_keys)

    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    train_dict = {**cfg.to_dict(), "output_dir": str(out)}
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    params = [p for p in policy.parameters() if p.requires_grad]
    last_dir = resume_from / PRETRAINED if resume_from is not None else None
    window: list[float] = []
    t_window = time.perf_counter()

    def update(batch: dict[str, torch.Tensor]) -> None:
        nonlocal step, last_dir, t_window
        policy.train()
        with autocast():
            loss, _ = policy(batch)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        policy.update()
        if scheduler is not None:
            scheduler.step()
        step += 1
        window.append(float(loss.detach()))
        if step % cfg.log_freq == 0 or step == total:
            mean_loss = sum(window) / len(window)
            if not math.isfinite(mean_loss):
                raise TrainError(f"loss is {mean_loss} at step {step}; lower --policy.lr or check the data")
            elapsed = max(time.perf_counter() - t_window, 1e-9)
            record = {
                "step": step,
                "loss": mean_loss,
                "grad_norm": float(grad_norm),
                "lr": optimizer.param_groups[0]["lr"],
                "samples_per_s": len(window) * cfg.batch_size / elapsed,
                "online_buffer_size": len(buffer),
            }
            _append(out / "logs" / "train.jsonl", record)
            log.info("step %d/%d loss=%.4f buffer=%d frames", step, total, mean_loss, len(buffer))
            window.clear()
            t_window = time.perf_counter()
        if cfg.save_checkpoint and (step % cfg.save_freq == 0 or step == total):
            last_dir = save_checkpoint(out, step, policy, optimizer, scheduler, train_dict)
            if len(buffer):
                buffer.save(last_dir.parent / STATE / BUFFER_FILE)

    try:
        while step < cfg.steps:  # offline phase: dataset samples only
            update(batch_of(0))
        while step < total:
            episodes = collect_episodes(
                env, policy, cfg.online.rollout_n_episodes, env_seed + buffer.episodes_added, device
            )
            for ep in episodes:
                buffer.add_episode(ep.frames, ep.has_action)
                _append(
                    out / "logs" / "online.jsonl",
                    {
                        "step": step,
                        "seed": ep.seed,
                        "sum_reward": ep.sum_reward,
                        "success": ep.success,
                        "length": ep.length,
                        "online_buffer_size": len(buffer),
                    },
                )
            log.info(
                "rollout at step %d: success %s, sum_reward %s",
                step,
                [e.success for e in episodes],
                [round(e.sum_reward, 2) for e in episodes],
            )
            if len(buffer) < cfg.online.buffer_seed_size:
                continue
            n_updates = cfg.online.steps_between_rollouts or sum(e.length for e in episodes)
            n_online = cfg.batch_size if cache is None else round(cfg.batch_size * cfg.online.sampling_ratio)
            for _ in range(min(n_updates, total - step)):
                update(batch_of(n_online))
    finally:
        env.close()
    if last_dir is None:
        last_dir = out / "checkpoints" / "last" / PRETRAINED
    return last_dir


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_online_log(output_dir: str | Path) -> list[dict[str, Any]]:
    """The rollouts of an online run (one record per collected episode)."""
    path = Path(output_dir) / "logs" / "online.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
