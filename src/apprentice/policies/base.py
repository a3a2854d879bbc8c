"""What every policy is: an nn.Module that normalizes its own inputs, trains with `forward(batch)`
and acts with `select_action(obs)` in raw (dataset) units."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from apprentice.policies.config import ACTION, PolicyConfig, PolicyError
from apprentice.policies.normalize import Normalizer, Stats


class Policy(nn.Module):
    """Base class; subclasses set `config_class` and implement forward/predict_action_chunk/select_action."""

    config_class: ClassVar[type[PolicyConfig]]

    def __init__(self, config: PolicyConfig, stats: Stats) -> None:
        super().__init__()
        if not config.output_features:
            raise PolicyError(
                f"{config.type}: output_features is empty; the policy needs an 'action' feature"
            )
        self.config = config
        self.normalizer = Normalizer(
            {**config.input_features, **config.output_features}, config.normalization_mapping, stats
        )

    @classmethod
    def from_checkpoint(cls, config: PolicyConfig, stats: Stats, directory: Path) -> Policy:
        """Build the policy for a pretrained_model/ dir (before its weights load); SmolVLA reads its VLM
        config and tokenizer from there."""
        return cls(config, stats)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def reset(self) -> None:
        """Forget queued actions/observations; call at the start of every episode."""

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def predict_action_chunk(self, obs: dict[str, Any]) -> Tensor:
        raise NotImplementedError

    def select_action(self, obs: dict[str, Any]) -> Tensor:
        raise NotImplementedError

    def update(self) -> None:
        """Called by the trainer after every optimizer step (EMA target networks); most policies have none."""

    def init_pretrained_backbone(self) -> None:
        """Load ImageNet (or other) backbone weights named by the config; only when training from scratch."""

    def optim_groups(self) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def backbone_parameters(self) -> list[nn.Parameter]:
        return []

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Checkpoint the policy's transformer layers / backbone stages / UNet blocks in training."""
        from apprentice.policies.checkpointing import Checkpointable

        blocks = [m for m in self.modules() if isinstance(m, Checkpointable)]
        if not blocks:
            raise PolicyError(
                f"{self.config.type}: gradient checkpointing is not implemented for this policy; "
                "drop --grad_checkpointing"
            )
        for m in blocks:
            m.grad_checkpointing = enabled

    def store_frozen_in(self, dtype: torch.dtype) -> None:
        """The trainer's hook when it trains under `dtype` autocast: a policy may keep the weights it never
        trains in `dtype` (no per-step casts, less memory); checkpoints still save them as before. Default: no-op."""

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        raise NotImplementedError

    def make_scheduler(
        self, optimizer: torch.optim.Optimizer, num_steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        return None

    # --- checkpoint hooks (pretrained.py); most policies need none of them ---------------------------
    def adapt_state_dict(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights read from model.safetensors -> this module's keys (e.g. restore tied tensors)."""
        return weights

    def processor_steps(self, pre: list[dict], post: list[dict]) -> tuple[list[dict], list[dict]]:
        """The pre/post processor steps to write (LeRobot's per-policy pipelines); default: unchanged."""
        return pre, post

    def save_extra(self, directory: Path) -> None:
        """Write files beside the weights (a tokenizer); default: none."""

    def inherit(self, base: Policy) -> None:
        """Take over non-weight state (a tokenizer) from the pretrained policy this one fine-tunes."""

    def default_peft_targets(self) -> str | list[str] | None:
        """The modules `--policy.use_peft=true` adapts with LoRA when --peft.target_modules is not given
        (lerobot's `_get_default_peft_targets`); None = the user must name them."""
        return None

    def configure_from_processor(self, directory: Path, steps: list[dict]) -> None:
        """Read what the policy needs from a loaded checkpoint's preprocessor steps; default: nothing."""

    def _check_obs(self, obs: dict[str, Any]) -> None:
        missing = [k for k in self.config.input_features if k not in obs]
        if missing:
            raise PolicyError(
                f"{self.config.type} policy: observation lacks {missing}; it has {sorted(obs)}. "
                "Map these features in the contract or dataset."
            )

    def _unnormalize_action(self, actions: Tensor) -> Tensor:
        return self.normalizer.unnormalize(ACTION, actions.float())


def adam_from_config(
    groups: list[dict[str, Any]], config: Any, lr: float | None = None, fused: bool = False
) -> torch.optim.Optimizer:
    """Adam from the config's optimizer_lr/_betas/_eps/_weight_decay (LeRobot's AdamConfig preset, which
    Diffusion and VQ-BeT use); `lr` overrides the config's."""
    return torch.optim.Adam(
        groups,
        lr=lr or config.optimizer_lr,
        betas=tuple(config.optimizer_betas),
        eps=config.optimizer_eps,
        weight_decay=config.optimizer_weight_decay,
        fused=fused or None,
        # Unfused (CPU) runs take the multi-tensor path, not a Python loop over parameters: bit-identical
        # updates, a few kernels per step instead of ~10 per parameter (VQ-BeT: ~1000 -> ~30 on CPU).
        foreach=None if fused else True,
    )


def cosine_decay_with_warmup(
    optimizer: torch.optim.Optimizer, warmup: int, decay: int, peak_lr: float, decay_lr: float, num_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """LeRobot's CosineDecayWithWarmupSchedulerConfig: linear warm-up from peak/(warmup+1), then cosine to
    decay_lr over `decay` steps; both squeezed proportionally when the run is shorter than `decay`."""
    if num_steps < decay:
        warmup, decay = int(warmup * num_steps / decay), num_steps

    def factor(step: int) -> float:
        if step < warmup:
            if step <= 0:
                return 1 / (warmup + 1)
            return (1 / (warmup + 1) - 1) * (1 - step / warmup) + 1
        alpha = decay_lr / peak_lr
        return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(step, decay) / max(decay, 1))) + alpha

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def adamw_from_config(
    groups: list[dict[str, Any]] | list[Any], config: Any, lr: float | None = None, fused: bool = False
) -> torch.optim.Optimizer:
    """AdamW from the config's optimizer_lr/_betas/_eps/_weight_decay (LeRobot's AdamWConfig preset, which
    SmolVLA and the π policies use); `lr` overrides the config's."""
    return torch.optim.AdamW(
        groups, lr=lr or config.optimizer_lr, betas=tuple(config.optimizer_betas), eps=config.optimizer_eps,
        weight_decay=config.optimizer_weight_decay, fused=fused or None,
    )
