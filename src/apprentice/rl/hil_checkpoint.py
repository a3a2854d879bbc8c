"""HIL-SERL learner checkpoints: lerobot's layout plus everything a killed run needs to continue.

checkpoints/<env_step:08d>/pretrained_model/   policy (save_policy) + train_config.json
checkpoints/<env_step:08d>/algorithm/          model.safetensors (critics, targets, log_alpha) + config.json,
                                               as lerobot 0.6's SACAlgorithm.save_pretrained
checkpoints/<env_step:08d>/training_state/     training_step.json (env step, episodes, optimization step),
                                               optimizer_state.safetensors ("<part>/state/<i>/<name>"),
                                               optimizer_param_groups.json, rng_state.safetensors,
                                               online_buffer.safetensors, offline_buffer.safetensors
checkpoints/last -> <env_step:08d>
Only JSON and safetensors; a crash mid-write leaves the previous checkpoint as `last`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from apprentice.policies import save_policy
from apprentice.policies.sac import SACAlgorithm
from apprentice.rl.replay import ReplayBuffer, ReplayError
from apprentice.train.checkpoint import _plain, rng_state, set_rng_state

PRETRAINED, ALGORITHM, STATE = "pretrained_model", "algorithm", "training_state"


def save_hil_checkpoint(out: Path, algo: SACAlgorithm, progress: dict[str, int], online: ReplayBuffer,
                        offline: ReplayBuffer | None, train_config: dict[str, Any]) -> Path:
    root = Path(out) / "checkpoints"
    step = int(progress["env_step"])
    final, tmp = root / f"{step:08d}", root / f".{step:08d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    model_dir = save_policy(algo.policy, tmp / PRETRAINED)
    (model_dir / "train_config.json").write_text(json.dumps(train_config, indent=4))
    (tmp / ALGORITHM).mkdir(parents=True)
    save_file(algo.algorithm_tensors(), str(tmp / ALGORITHM / "model.safetensors"))
    cfg = algo.config
    algo_cfg = {"type": "sac", **{k: getattr(cfg, k) for k in (
        "actor_lr", "critic_lr", "temperature_lr", "discount", "use_backup_entropy", "critic_target_update_weight",
        "num_critics", "num_subsample_critics", "temperature_init", "target_entropy", "utd_ratio",
        "policy_update_freq", "grad_clip_norm", "use_torch_compile")}}
    (tmp / ALGORITHM / "config.json").write_text(json.dumps(algo_cfg, indent=4))
    state_dir = tmp / STATE
    state_dir.mkdir()
    sd = algo.state_dict()
    (state_dir / "training_step.json").write_text(
        json.dumps({**progress, "optimization_step": sd["optimization_step"]}, indent=4)
    )
    flat, groups = {}, {}
    for name, opt_sd in sd["optimizers"].items():
        for pid, per in opt_sd["state"].items():
            for key, value in per.items():
                flat[f"{name}/state/{pid}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        groups[name] = _plain(opt_sd["param_groups"])
    save_file(flat, str(state_dir / "optimizer_state.safetensors"))
    (state_dir / "optimizer_param_groups.json").write_text(json.dumps(groups, indent=4))
    save_file(rng_state(), str(state_dir / "rng_state.safetensors"))
    online.save(state_dir / "online_buffer.safetensors")
    if offline is not None and len(offline):
        offline.save(state_dir / "offline_buffer.safetensors")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    link = root / ".last.partial"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(final.name)
    os.replace(link, root / "last")
    return final


def load_hil_checkpoint(ckpt: Path, algo: SACAlgorithm) -> tuple[dict[str, int], ReplayBuffer, ReplayBuffer | None]:
    """Restore weights, optimizers, RNG into `algo` (built from the checkpoint's config); returns progress
    and the two replay buffers."""
    state_dir = Path(ckpt) / STATE
    try:
        progress = json.loads((state_dir / "training_step.json").read_text())
        flat = load_file(str(state_dir / "optimizer_state.safetensors"))
        groups = json.loads((state_dir / "optimizer_param_groups.json").read_text())
        weights = load_file(str(Path(ckpt) / PRETRAINED / "model.safetensors"))
        online = ReplayBuffer.load(state_dir / "online_buffer.safetensors")
    except (OSError, json.JSONDecodeError, ReplayError) as exc:
        raise ReplayError(f"{ckpt}: checkpoint incomplete or corrupt ({exc}); resume from an earlier one") from exc
    offline_path = state_dir / "offline_buffer.safetensors"
    offline = ReplayBuffer.load(offline_path) if offline_path.is_file() else None
    optimizers: dict[str, Any] = {}
    for name, saved_groups in groups.items():
        per: dict[int, dict[str, torch.Tensor]] = {}
        for key, tensor in flat.items():
            part, _, pid, stat = key.split("/", 3)
            if part == name:
                per.setdefault(int(pid), {})[stat] = tensor
        current = algo.optimizers[name].state_dict()["param_groups"]
        for g, cur in zip(saved_groups, current, strict=True):
            g["params"] = cur["params"]
        optimizers[name] = {"state": per, "param_groups": saved_groups}
    algo.load_state_dict({"policy": weights, "optimizers": optimizers,
                          "optimization_step": progress.pop("optimization_step", 0)})
    set_rng_state(load_file(str(state_dir / "rng_state.safetensors")))
    return progress, online, offline
