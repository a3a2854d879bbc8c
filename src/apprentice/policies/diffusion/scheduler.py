"""DDPM and DDIM noise schedulers with the semantics of `diffusers` (which LeRobot uses), written here
so training needs no diffusers install. Only what Diffusion Policy uses: epsilon/sample prediction,
fixed-small variance, sample clipping, "leading" timestep spacing, DDIM with eta=0."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def make_betas(schedule: str, n: int, beta_start: float, beta_end: float) -> Tensor:
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, n, dtype=torch.float32, device="cpu")
    if schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float32, device="cpu") ** 2

    # "squaredcos_cap_v2": the cosine schedule of Nichol & Dhariwal, betas capped at 0.999.
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor(
        [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)],
        dtype=torch.float32,
        device="cpu",  # host-side tables even when the model is built under a meta/cuda device context
    )


class NoiseScheduler:
    def __init__(
        self,
        kind: str,
        num_train_timesteps: int,
        beta_schedule: str,
        beta_start: float,
        beta_end: float,
        prediction_type: str,
        clip_sample: bool,
        clip_sample_range: float,
    ) -> None:
        self.kind = kind
        self.num_train_timesteps = num_train_timesteps
        self.prediction_type = prediction_type
        self.clip_sample = clip_sample
        self.clip_sample_range = clip_sample_range
        self.betas = make_betas(beta_schedule, num_train_timesteps, beta_start, beta_end)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self._acp_host = self.alphas_cumprod.tolist()  # sampling reads scalars: never from the GPU
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, device="cpu")
        self.num_inference_steps = num_train_timesteps

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        if self.alphas_cumprod.device != x0.device:  # once: a per-step host->GPU copy would sync
            self.alphas_cumprod = self.alphas_cumprod.to(x0.device)
        acp = self.alphas_cumprod.to(dtype=x0.dtype)[t]
        while acp.dim() < x0.dim():
            acp = acp.unsqueeze(-1)
        return acp.sqrt() * x0 + (1 - acp).sqrt() * noise

    def set_timesteps(self, n: int) -> None:
        if n > self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps={n} exceeds num_train_timesteps={self.num_train_timesteps}"
            )
        self.num_inference_steps = n
        ratio = self.num_train_timesteps // n
        self.timesteps = torch.arange(n - 1, -1, -1) * ratio

    def step(
        self, model_output: Tensor, t: int, sample: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """One reverse step x_t -> x_{t-k}."""
        prev_t = t - self.num_train_timesteps // self.num_inference_steps
        acp_t = self._acp_host[t]
        acp_prev = self._acp_host[prev_t] if prev_t >= 0 else 1.0
        beta_t, beta_prev = 1 - acp_t, 1 - acp_prev
        if self.prediction_type == "epsilon":
            x0 = (sample - beta_t**0.5 * model_output) / acp_t**0.5
        else:
            x0 = model_output
        # DDIM's noise estimate comes from the unclipped x0 (diffusers computes it before clipping).
        eps = model_output if self.prediction_type == "epsilon" else (sample - acp_t**0.5 * x0) / beta_t**0.5
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        if self.kind == "DDIM":
            return acp_prev**0.5 * x0 + (1 - acp_prev) ** 0.5 * eps
        alpha_t = acp_t / acp_prev
        cur_beta = 1 - alpha_t
        prev = (acp_prev**0.5 * cur_beta / beta_t) * x0 + (alpha_t**0.5 * beta_prev / beta_t) * sample
        if t > 0:
            variance = max(beta_prev / beta_t * cur_beta, 1e-20)
            noise = torch.randn(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
            )
            prev = prev + variance**0.5 * noise
        return prev
