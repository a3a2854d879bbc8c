"""Gradient checkpointing: a module whose `grad_checkpointing` is on runs its blocks under
`torch.utils.checkpoint`, so their activations are recomputed in backward instead of kept (less memory,
about one more forward of compute). `Policy.set_grad_checkpointing` flips every such module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class Checkpointable(nn.Module):
    """Mixin flag: `run` checkpoints a block when training with gradients and the flag is on."""

    grad_checkpointing: bool = False

    def run(self, fn: Callable[..., Any], *args: Any, random: bool = False, **kwargs: Any) -> Any:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            # Only blocks that draw random numbers (dropout) need their RNG state replayed for the
            # recompute; the others skip it, which also keeps them capturable in a CUDA graph.
            return checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=random, **kwargs)
        return fn(*args, **kwargs)
