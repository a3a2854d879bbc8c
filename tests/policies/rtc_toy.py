"""A tiny flow-matching model trained on a two-mode toy action distribution (shared by the RTC tests)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

CHUNK, DIM = 8, 2


class ToyVelocity(nn.Module):
    """v(x_t, t) for chunks [B, CHUNK, DIM]; unconditional (the observation does not matter here)."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(CHUNK * DIM + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, CHUNK * DIM),
        )

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        flat = torch.cat([x_t.flatten(1), t[:, None]], dim=1)
        return self.net(flat).view(-1, CHUNK, DIM)


def two_mode_chunks(n: int, generator: torch.Generator) -> Tensor:
    """Half the chunks hold +1 on every action, half -1 (a little noise): two modes, nothing between."""
    sign = torch.randint(0, 2, (n, 1, 1), generator=generator).float() * 2 - 1
    return sign * torch.ones(n, CHUNK, DIM) + 0.05 * torch.randn(n, CHUNK, DIM, generator=generator)


def train_toy(steps: int = 600, seed: int = 0) -> ToyVelocity:
    """Flow matching: x_t = t * noise + (1 - t) * actions, target v = noise - actions (t = 1 is noise)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = ToyVelocity()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        actions = two_mode_chunks(256, g)
        noise = torch.randn(actions.shape, generator=g)
        t = torch.rand(actions.shape[0], generator=g)
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
        loss = ((model(x_t, t) - (noise - actions)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
