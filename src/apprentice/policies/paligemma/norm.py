"""Gemma's RMSNorm and π0.5's adaptive variant (adaRMSNorm), which stock transformers does not have.

Plain: `x / rms(x) * (1 + weight)` (Gemma's zero-centred scale). Adaptive: a linear map of the condition
(π0.5's flow-matching time embedding) gives a scale, a shift and a gate: `x / rms(x) * (1 + scale) + shift`,
and the gate multiplies the block's output before the residual add. Parameter names are lerobot's
(`weight`, or `dense.weight`/`dense.bias`), so checkpoints load either way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AdaRMSNorm(nn.Module):
    """RMSNorm; with `cond_dim` set, modulated by a condition vector. forward -> (normed, gate or None)."""

    def __init__(self, dim: int, eps: float = 1e-6, cond_dim: int | None = None) -> None:
        super().__init__()
        self.dim, self.eps, self.cond_dim = dim, eps, cond_dim
        if cond_dim is None:
            self.weight = nn.Parameter(torch.zeros(dim))
            self.dense = None
        else:
            self.dense = nn.Linear(cond_dim, 3 * dim)
            nn.init.zeros_(self.dense.weight)  # starts as the plain norm (scale/shift/gate from the bias only)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        # Statistics in float32 whatever the activations' dtype (bf16 variance loses the small features).
        var = x.float().square().mean(dim=-1, keepdim=True)
        normed = x.float() * torch.rsqrt(var + self.eps)
        if self.dense is None:
            return (normed * (1.0 + self.weight.float())).to(x.dtype), None
        if cond is None:
            raise ValueError("this adaRMSNorm needs its condition (the time embedding)")
        mod = self.dense(cond.to(self.dense.weight.dtype))
        if x.dim() == 3:
            mod = mod[:, None]
        scale, shift, gate = mod.chunk(3, dim=-1)
        return (normed * (1.0 + scale.float()) + shift.float()).to(x.dtype), gate.to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps}, cond_dim={self.cond_dim}"


def gated_residual(x: Tensor, y: Tensor, gate: Tensor | None) -> Tensor:
    """x + y, or x + y * gate under adaRMSNorm."""
    return x + y if gate is None else x + y * gate
