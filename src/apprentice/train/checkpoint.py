"""Checkpoints in lerobot-train's layout, written atomically, read back without pickle:

<output_dir>/checkpoints/<step:06d>/pretrained_model/   (policies.save_policy + train_config.json)
<output_dir>/checkpoints/<step:06d>/training_state/     training_step.json, optimizer_state.safetensors,
                                                        optimizer_param_groups.json, rng_state.safetensors,
                                                        scheduler_state.json
<output_dir>/checkpoints/last -> <step:06d>

With `--ema.enable=true`, pretrained_model/ holds the EMA weights (what eval and deploy load) and
training_state/ adds live_model.safetensors + ema_state.json (the live weights and the EMA step count).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from apprentice.policies import Policy, save_policy
from apprentice.train.config import TrainError

PRETRAINED = "pretrained_model"
STATE = "training_state"
TRAIN_CONFIG = "train_config.json"


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def save_checkpoint(
    output_dir: Path,
    step: int,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    train_config: dict[str, Any],
    extra_state: dict[str, dict[str, Any]] | None = None,
    ema: Any = None,
    model_state: dict[str, torch.Tensor] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint `step` and point `last` at it; a crash mid-write leaves the previous one intact.
    `extra_state`: more training_state/<name> JSON files (the data position), written in the same swap.
    `model_state` / `optimizer_state`: full state dicts gathered beforehand (FSDP), instead of the live ones."""
    root = checkpoints_dir(output_dir)
    final = root / f"{step:06d}"
    tmp = root / f".{step:06d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    if ema is not None:
        with ema.swapped(policy):
            model_dir = save_policy(policy, tmp / PRETRAINED)
    else:
        model_dir = save_policy(policy, tmp / PRETRAINED, state=model_state)
    (model_dir / TRAIN_CONFIG).write_text(
        json.dumps({**train_config, "policy": policy.config.to_dict()}, indent=4)
    )
    state_dir = tmp / STATE
    state_dir.mkdir(parents=True)
    (state_dir / "training_step.json").write_text(json.dumps({"step": step}, indent=4))
    _save_optimizer(optimizer_state or optimizer.state_dict(), state_dir)
    if scheduler is not None:
        (state_dir / "scheduler_state.json").write_text(json.dumps(_plain(scheduler.state_dict()), indent=4))
    if ema is not None:
        ema.save(policy, state_dir)
    save_file(rng_state(), str(state_dir / "rng_state.safetensors"))
    for name, content in (extra_state or {}).items():
        (state_dir / name).write_text(json.dumps(content, indent=4))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    link_tmp = root / ".last.partial"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(final.name)
    os.replace(link_tmp, root / "last")
    return final / PRETRAINED


def _save_optimizer(state: dict[str, Any], state_dir: Path) -> None:
    # LeRobot's flattening: "state/<param index>/<name>" tensors; param groups as JSON.
    flat = {}
    for pid, per in state["state"].items():
        for name, value in per.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            flat[f"state/{pid}/{name}"] = tensor.detach().cpu().contiguous()
    save_file(flat, str(state_dir / "optimizer_state.safetensors"))
    (state_dir / "optimizer_param_groups.json").write_text(json.dumps(_plain(state["param_groups"]), indent=4))


def _plain(value: Any) -> Any:
    """JSON-ready: a captured step keeps learning rates as device tensors; they are saved as numbers."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _read(path: Path) -> Any:
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return load_file(str(path))
    except FileNotFoundError as exc:
        raise TrainError(
            f"{path} is missing; the checkpoint is incomplete — resume from an earlier "
            f"checkpoints/<step> with --config_path=<that>/pretrained_model/train_config.json"
        ) from exc
    except (json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise TrainError(f"{path} is corrupt ({exc}); resume from an earlier checkpoint") from exc


def load_training_state(
    checkpoint: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    load_optimizer: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Restore optimizer, scheduler and RNG states from `checkpoint`; returns the step it was saved at.
    `load_optimizer` takes the full (index-keyed) optimizer state instead of `optimizer.load_state_dict`
    (FSDP: each rank keeps its shards)."""
    state_dir = checkpoint / STATE
    step = int(_read(state_dir / "training_step.json")["step"])
    flat = _read(state_dir / "optimizer_state.safetensors")
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        _, pid, name = key.split("/", 2)
        per_param.setdefault(int(pid), {})[name] = tensor
    groups = _read(state_dir / "optimizer_param_groups.json")
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise TrainError(
            f"{state_dir}: optimizer groups {[len(g['params']) for g in groups]} do not match the "
            f"model's {[len(g['params']) for g in current]} (different policy config or freeze flag?)"
        )
    for saved, cur in zip(groups, current):
        saved["params"] = cur["params"]
    (load_optimizer or optimizer.load_state_dict)({"state": per_param, "param_groups": groups})
    if scheduler is not None and (state_dir / "scheduler_state.json").is_file():
        scheduler.load_state_dict(_read(state_dir / "scheduler_state.json"))
    set_rng_state(_read(state_dir / "rng_state.safetensors"))
    return step


def resolve_checkpoint(output_dir: Path | None, config_path: str | None) -> Path:
    """The checkpoint `--resume=true` continues: --config_path's checkpoint, else <output_dir>/checkpoints/last."""
    if config_path:
        path = Path(config_path)
        # .../checkpoints/<step>/pretrained_model/train_config.json -> .../checkpoints/<step>
        if path.name == TRAIN_CONFIG and path.parent.name == PRETRAINED:
            return path.parent.parent
    if output_dir is None:
        raise TrainError(
            "--resume=true needs --output_dir (or --config_path=<ckpt>/pretrained_model/train_config.json)"
        )
    last = checkpoints_dir(output_dir) / "last"
    if not last.exists():
        raise TrainError(f"--resume=true but {last} does not exist; nothing to resume in {output_dir}")
    return last.resolve()


def rng_state() -> dict[str, torch.Tensor]:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "py_rng_version": torch.tensor([py[0]], dtype=torch.int64),
        "py_rng_state": torch.tensor(py[1], dtype=torch.int64),
        "np_rng_state_values": torch.tensor(np_state[1].astype(np.int64)),
        "np_rng_state_index": torch.tensor([np_state[2]], dtype=torch.int64),
        "np_rng_has_gauss": torch.tensor([np_state[3]], dtype=torch.int64),
        "np_rng_cached_gaussian": torch.tensor([np_state[4]], dtype=torch.float32),
        "torch_rng_state": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda_rng_state"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    random.setstate((int(state["py_rng_version"].item()), tuple(state["py_rng_state"].tolist()), None))
    np.random.set_state(
        (
            "MT19937",
            state["np_rng_state_values"].numpy().astype(np.uint32),
            int(state["np_rng_state_index"].item()),
            int(state["np_rng_has_gauss"].item()),
            float(state["np_rng_cached_gaussian"].item()),
        )
    )
    torch.set_rng_state(state["torch_rng_state"])
    if torch.cuda.is_available() and "torch_cuda_rng_state" in state:
        torch.cuda.set_rng_state(state["torch_cuda_rng_state"])
