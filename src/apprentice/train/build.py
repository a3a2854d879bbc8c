"""What a training run is built from: the dataset it opens, the policy it trains (new, resumed or
fine-tuned from a pretrained one), the instruction per task, and where its outputs go. Shared by the
offline loop (`loop.train`) and the online collect-and-train loop (`online.py`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import torch

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
from apprentice.train.checkpoint import PRETRAINED
from apprentice.train.config import TrainConfig, TrainError
from apprentice.train.data import REWARD, apply_input_shapes, sample_deltas


def open_dataset(cfg: TrainConfig) -> Any:
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


def dataset_stats(ds: Any, use_imagenet: bool) -> dict[str, dict[str, torch.Tensor]]:
    stats = {k: dict(v) for k, v in ds.meta.stats.items()}
    if use_imagenet:
        for key in ds.camera_keys:
            stats.setdefault(key, {}).update(IMAGENET_STATS)
    return stats_to_tensors(stats)


def with_deltas(ds: Any, config: Any, cfg: TrainConfig) -> Any:
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


def build_policy(cfg: TrainConfig, ds: Any, resume_from: Path | None) -> Policy:
    if resume_from is not None:
        return load_policy(resume_from / PRETRAINED, device="cpu").train()
    inputs, outputs = features_from_dataset(ds.features)
    stats = dataset_stats(ds, cfg.dataset.use_imagenet_stats)
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


def output_dir(cfg: TrainConfig) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    return Path("outputs/train") / f"{stamp}_{cfg.job_name or cfg.policy_type or 'policy'}"


def with_tasks(next_batch: Any, tasks: list[str]) -> Any:
    """A batch source whose batches carry `task` (list[str]) from their task_index, as lerobot's do."""

    def wrapped() -> dict[str, Any]:
        batch = next_batch()
        if "task" not in batch and "task_index" in batch:
            batch["task"] = [tasks[int(i)] for i in batch["task_index"].reshape(-1).tolist()]
        return batch

    return wrapped
