"""EMA of the policy weights (Diffusion Policy §V.D; newest lerobot's `--ema.*`), with diffusers'
EMAModel schedule: no averaging for the first `update_after_step` + 1 steps, then
decay_t = 1 - (1 + t / inv_gamma) ** -power clamped to [min_decay, max_decay] (or a constant `decay`).

The shadow lives beside the live weights on the training device and is updated after every optimizer
step with one multi-tensor lerp (no host sync; the decay is computed on the host from the step count).
Checkpoints: `swapped()` puts the shadow into the policy so pretrained_model/ holds the EMA weights;
the live weights and the step count go to training_state/ for an exact resume."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from apprentice.train.config import EMAConfig, TrainError

LIVE_WEIGHTS = "live_model.safetensors"
EMA_STATE = "ema_state.json"


class EMA:
    def __init__(self, policy: nn.Module, cfg: EMAConfig) -> None:
        self.cfg = cfg
        self.names = [n for n, _ in policy.named_parameters()]
        self.shadow = [p.detach().clone() for p in policy.parameters()]
        self.optimization_step = 0

    def decay(self, optimization_step: int) -> float:
        cfg = self.cfg
        lo = cfg.min_decay if cfg.decay is None else cfg.decay
        hi = cfg.max_decay if cfg.decay is None else cfg.decay
        step = max(0, optimization_step - cfg.update_after_step - 1)
        if step <= 0:
            return 0.0
        return max(min(1 - (1 + step / cfg.inv_gamma) ** -cfg.power, hi), lo)

    @torch.no_grad()
    def update(self, policy: nn.Module) -> None:
        self.optimization_step += 1
        weight = 1.0 - self.decay(self.optimization_step)
        params = list(policy.parameters())
        trained = [(s, p) for s, p in zip(self.shadow, params) if p.requires_grad]
        frozen = [(s, p) for s, p in zip(self.shadow, params) if not p.requires_grad]
        if trained:
            torch._foreach_lerp_([s for s, _ in trained], [p.detach() for _, p in trained], weight)
        for s, p in frozen:  # as diffusers: a frozen parameter is copied, not averaged
            s.copy_(p)

    @contextlib.contextmanager
    def swapped(self, policy: nn.Module) -> Iterator[None]:
        """The EMA weights in `policy` inside the block; the live ones restored after."""
        params = list(policy.parameters())
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(params, live):
                    p.copy_(v)

    def save(self, policy: nn.Module, state_dir: Path) -> None:
        """Live weights + step count into training_state/ (call outside `swapped`)."""
        live = {n: p.detach().cpu().contiguous() for n, p in policy.named_parameters()}
        save_file(live, str(state_dir / LIVE_WEIGHTS))
        (state_dir / EMA_STATE).write_text(json.dumps({"optimization_step": self.optimization_step}, indent=4))

    @staticmethod
    def resume(policy: nn.Module, cfg: EMAConfig, state_dir: Path, keep: bool = True) -> EMA | None:
        """`policy` was loaded from pretrained_model/ (the EMA weights when EMA was on): those become the
        shadow (when `keep`), and the live weights come back from training_state/ (always: a run resumed
        with EMA off continues from its live weights, not from the average)."""
        ema = EMA(policy, cfg) if keep else None
        path = state_dir / LIVE_WEIGHTS
        if not path.is_file():  # a checkpoint written without EMA: start averaging from its weights
            return ema
        try:
            live = load_file(str(path))
            step = int(json.loads((state_dir / EMA_STATE).read_text())["optimization_step"])
        except (OSError, ValueError, KeyError) as exc:
            raise TrainError(
                f"{state_dir}: cannot read the EMA state ({exc}); resume from an earlier checkpoint"
            ) from exc
        params = dict(policy.named_parameters())
        # Names the policy no longer holds as parameters are skipped (SmolVLA's never-used VLM parts live outside
        # its module tree now; a run saved before that still resumes); every parameter must be in the file.
        if not set(params) <= set(live):
            raise TrainError(f"{path}: parameter names do not match the policy; resume from a matching checkpoint")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(live[name].to(p.device))
        if ema is not None:
            ema.optimization_step = step
        return ema
