"""Flow matching as openpi trains and samples it (π0, π0.5).

Convention (openpi's, kept by lerobot and by `apprentice.policies.rtc`): time 1 is pure noise and time 0
the data; x_t = t * noise + (1 - t) * actions, the model predicts the velocity u = noise - actions, and
sampling integrates from t = 1 to t = 0 with Euler steps of dt = -1 / num_steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor], Tensor]  # (x_t (B, chunk, A), t (B,)) -> v (B, chunk, A)


def sample_time(bsize: int, device: torch.device, alpha: float, beta: float, scale: float, offset: float) -> Tensor:
    """Training times Beta(alpha, beta) * scale + offset: π0's emphasis on the noisier end, never exactly 0."""
    # Beta sampling on the CPU: its Dirichlet kernel is missing on some devices (MPS).
    dist = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(beta)))
    return (dist.sample((bsize,)) * scale + offset).to(device=device, dtype=torch.float32)


def time_embedding(t: Tensor, dim: int, min_period: float, max_period: float) -> Tensor:
    """(B,) times -> (B, dim) sine/cosine features over geometrically spaced periods (computed in float64)."""
    if dim % 2:
        raise ValueError(f"time embedding width {dim} must be even")
    dtype = torch.float32 if t.device.type == "mps" else torch.float64
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=dtype, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2 * math.pi / period)[None, :] * t[:, None].to(dtype)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(torch.float32)
