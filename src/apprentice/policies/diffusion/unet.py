"""The conditional 1-D UNet of Diffusion Policy (FiLM-conditioned on timestep + observation features).
Module names match LeRobot's so its weights load key-for-key."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from apprentice.policies.checkpointing import Checkpointable


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        emb = t.float().unsqueeze(-1) * freqs.unsqueeze(0)
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, inp: int, out: int, kernel_size: int, n_groups: int = 8) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(inp, out, kernel_size, padding=kernel_size // 2), nn.GroupNorm(n_groups, out), nn.Mish()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class ConditionalResidualBlock1d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_dim: int,
        kernel_size: int,
        n_groups: int,
        use_film_scale_modulation: bool,
    ) -> None:
        super().__init__()
        self.use_film_scale_modulation = use_film_scale_modulation
        self.out_channels = out_channels
        self.conv1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        cond_channels = out_channels * 2 if use_film_scale_modulation else out_channels
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, cond_channels))
        self.conv2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        self.residual_conv = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        out = self.conv1(x)
        c = self.cond_encoder(cond).unsqueeze(-1)
        if self.use_film_scale_modulation:
            out = c[:, : self.out_channels] * out + c[:, self.out_channels :]
        else:
            out = out + c
        return self.conv2(out) + self.residual_conv(x)


class ConditionalUnet1d(Checkpointable):
    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: tuple[int, ...],
        kernel_size: int,
        n_groups: int,
        diffusion_step_embed_dim: int,
        use_film_scale_modulation: bool,
    ) -> None:
        super().__init__()
        dsed = diffusion_step_embed_dim
        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalPosEmb(dsed), nn.Linear(dsed, dsed * 4), nn.Mish(), nn.Linear(dsed * 4, dsed)
        )
        kw = {
            "cond_dim": dsed + global_cond_dim,
            "kernel_size": kernel_size,
            "n_groups": n_groups,
            "use_film_scale_modulation": use_film_scale_modulation,
        }
        in_out = [(action_dim, down_dims[0]), *itertools.pairwise(down_dims)]
        self.down_modules = nn.ModuleList()
        for i, (dim_in, dim_out) in enumerate(in_out):
            last = i >= len(in_out) - 1
            self.down_modules.append(
                nn.ModuleList(
                    [
                        ConditionalResidualBlock1d(dim_in, dim_out, **kw),
                        ConditionalResidualBlock1d(dim_out, dim_out, **kw),
                        nn.Conv1d(dim_out, dim_out, 3, 2, 1) if not last else nn.Identity(),
                    ]
                )
            )
        mid = down_dims[-1]
        self.mid_modules = nn.ModuleList(
            [ConditionalResidualBlock1d(mid, mid, **kw), ConditionalResidualBlock1d(mid, mid, **kw)]
        )
        self.up_modules = nn.ModuleList()
        for i, (dim_out, dim_in) in enumerate(reversed(in_out[1:])):
            last = i >= len(in_out) - 1
            self.up_modules.append(
                nn.ModuleList(
                    [
                        ConditionalResidualBlock1d(dim_in * 2, dim_out, **kw),
                        ConditionalResidualBlock1d(dim_out, dim_out, **kw),
                        nn.ConvTranspose1d(dim_out, dim_out, 4, 2, 1) if not last else nn.Identity(),
                    ]
                )
            )
        self.final_conv = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size), nn.Conv1d(down_dims[0], action_dim, 1)
        )

    def forward(self, x: Tensor, timestep: Tensor, global_cond: Tensor) -> Tensor:
        """x: (B, T, action_dim) noisy trajectory; timestep: (B,); global_cond: (B, G). Returns (B, T, action_dim)."""
        x = x.transpose(1, 2)
        cond = torch.cat([self.diffusion_step_encoder(timestep).to(global_cond.dtype), global_cond], dim=-1)
        skips = []
        run = self.run  # each residual block checkpointed when grad_checkpointing is on (as lerobot 0.6)
        for res1, res2, down in self.down_modules:
            x = run(res2, run(res1, x, cond), cond)
            skips.append(x)
            x = down(x)
        for block in self.mid_modules:
            x = run(block, x, cond)
        for res1, res2, up in self.up_modules:
            x = torch.cat((x, skips.pop()), dim=1)
            x = up(run(res2, run(res1, x, cond), cond))
        return self.final_conv(x).transpose(1, 2)
