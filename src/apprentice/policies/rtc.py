"""Real-time chunking (RTC) for flow-matching policies, as lerobot's RTC (Black et al., 2025).

With asynchronous inference the robot keeps executing the previous chunk while the next one is denoised,
so the first ``inference_delay`` actions of the new chunk are already committed: the robot will execute
the previous chunk's actions for those ticks whatever the model says. RTC treats the next chunk as
inpainting: every Euler step of the denoiser is pulled toward the previous chunk's not-yet-executed
actions, fully on the committed prefix and with weights fading to zero at ``execution_horizon`` — so
the new chunk continues the old one instead of jumping to another mode of the action distribution.

Conventions (shared by every flow-matching policy here, SmolVLA's and lerobot's): time runs from 1
(noise) to 0 (data), ``x_t = t * noise + (1 - t) * actions``, the model predicts ``v ≈ noise - actions``,
and an Euler step is ``x_t + dt * v`` with ``dt = -1 / num_steps``. The clean actions predicted at ``x_t``
are then ``x_t - t * v``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from apprentice.policies.config import PolicyError

# lerobot's RTCAttentionSchedule values (the prefix weight curve between the delay and the horizon).
SCHEDULES = ("ZEROS", "ONES", "LINEAR", "EXP")

VelocityFn = Callable[[Tensor, Tensor], Tensor]  # (x_t [B, T, A], t [B]) -> v [B, T, A]


@dataclass
class RTCConfig:
    """lerobot's RTCConfig: whether and how strongly the next chunk is guided toward the committed prefix."""

    enabled: bool = True
    # ZEROS: only the delayed prefix; ONES: everything up to the horizon; LINEAR/EXP: 1 on the prefix,
    # then fading to 0 at execution_horizon.
    prefix_attention_schedule: str = "LINEAR"
    max_guidance_weight: float = 10.0  # clip of the guidance weight (it diverges as t -> 1)
    execution_horizon: int = 10  # actions of the previous chunk that guide the next (clipped to its length)
    debug: bool = False  # keep per-step guidance figures in RTCGuidance.trace
    debug_maxlen: int = 100
    # Apprentice's: backpropagate the correction through the model (the paper's VJP; one backward pass
    # per denoising step) instead of lerobot 0.6.1's identity Jacobian. See guided_step.
    full_jacobian: bool = False

    def __post_init__(self) -> None:
        schedule = getattr(self.prefix_attention_schedule, "value", self.prefix_attention_schedule)  # lerobot's enum
        self.prefix_attention_schedule = str(schedule).upper()
        if self.prefix_attention_schedule not in SCHEDULES:
            raise PolicyError(
                f"rtc prefix_attention_schedule={self.prefix_attention_schedule!r}; "
                f"choose one of {', '.join(SCHEDULES)}"
            )
        if self.max_guidance_weight <= 0:
            raise PolicyError(f"rtc max_guidance_weight must be > 0, got {self.max_guidance_weight}")
        if self.execution_horizon < 1:
            raise PolicyError(f"rtc execution_horizon must be >= 1 action, got {self.execution_horizon}")
        if self.debug_maxlen < 1:
            raise PolicyError(f"rtc debug_maxlen must be >= 1, got {self.debug_maxlen}")


@dataclass
class RTCGuidance:
    """What one guided inference needs: the previous chunk's not-yet-executed actions and the delay.

    ``prev_chunk_left_over`` ([T_prev, A] or [B, T_prev, A]; A may be less than the model's padded action
    size) is in the space being denoised — the policy's normalized actions, as lerobot keeps its "original"
    actions for RTC: `PolicyRuntime` normalizes the planned actions with the policy's ``normalizer`` before
    the call, so a policy passes ``rtc`` to `guided_denoise` as it is. ``inference_delay`` is in control
    ticks: how many of those actions the robot executes before the new chunk arrives.
    """

    prev_chunk_left_over: Tensor | None
    inference_delay: int
    config: RTCConfig = field(default_factory=RTCConfig)
    execution_horizon: int | None = None  # None: the config's
    trace: deque = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.inference_delay < 0:
            raise PolicyError(f"rtc inference_delay must be >= 0 ticks, got {self.inference_delay}")

    @property
    def active(self) -> bool:
        return self.config.enabled and self.prev_chunk_left_over is not None and len(self.prev_chunk_left_over) > 0

    def with_prefix(self, prefix: Tensor) -> RTCGuidance:
        """The same guidance with another prefix (e.g. one a policy maps into another action space)."""
        return RTCGuidance(prefix, self.inference_delay, self.config, self.execution_horizon, self.trace)

    @property
    def graphable(self) -> bool:
        """Whether `prepare`'s tensors carry all of it: the identity-Jacobian form reads nothing back to the
        host, so a CUDA graph can record it; full_jacobian (autograd) and debug traces (host reads) cannot."""
        return not (self.config.full_jacobian or self.config.debug)

    def prepare(self, like: Tensor) -> PreparedRTC:
        """This guidance as tensors shaped for the chunk ``like`` ([B, T, A]): the padded prefix and the
        per-action weights, computed once per chunk instead of once per denoising step."""
        assert self.prev_chunk_left_over is not None
        cfg = self.config
        horizon = min(self.execution_horizon or cfg.execution_horizon, self.prev_chunk_left_over.shape[-2])
        weights = prefix_weights(cfg.prefix_attention_schedule, self.inference_delay, horizon, like.shape[1])
        return PreparedRTC(_padded_prefix(self.prev_chunk_left_over, like),
                           weights.to(like.device, like.dtype)[None, :, None], cfg.max_guidance_weight)


@dataclass
class PreparedRTC:
    """Identity-Jacobian RTC guidance as device tensors only (`RTCGuidance.prepare`): what a sampler recorded
    in a CUDA graph reads from its static buffers, so a guided chunk replays like a plain one."""

    prefix: Tensor  # [B, T, A]: the not-yet-executed actions, zero past their end
    weights: Tensor  # [1, T, 1]: 1 on the committed prefix, fading to 0 at the execution horizon
    max_guidance_weight: float

    active = True


def prefix_weights(schedule: str, start: int, end: int, total: int) -> Tensor:
    """Per-action guidance weights [total]: 1 on the first ``start`` (committed) actions, then the schedule's
    fade up to ``end``, 0 after — lerobot's get_prefix_weights."""
    start = min(start, end)
    index = torch.arange(total, dtype=torch.float32)
    if schedule == "ZEROS":
        return (index < start).float()
    if schedule == "ONES":
        return (index < end).float()
    # LINEAR/EXP: the fade between start and end excludes both end points (1 at start - 1, 0 at end).
    n_fade = min(end, total) - start
    fade = torch.linspace(1.0, 0.0, n_fade + 2)[1:-1] if n_fade > 0 else torch.zeros(0)
    if schedule == "EXP":
        fade = fade * torch.expm1(fade) / (math.e - 1)
    weights = torch.zeros(total)
    weights[: min(start, total)] = 1.0
    weights[start : start + fade.numel()] = fade
    return weights


def guidance_weight(t: Tensor, max_guidance_weight: float) -> Tensor:
    """The paper's weight ``(1 - tau) / tau * ((1 - tau)^2 + tau^2) / (1 - tau)^2`` with tau = 1 - t,
    clipped to ``max_guidance_weight`` (it is infinite at pure noise, t = 1)."""
    tau = 1.0 - t
    limit = float(max_guidance_weight)  # a Python float: no host tensor, so a CUDA graph can record this
    c = torch.nan_to_num((1.0 - tau) / tau, posinf=limit)
    inv_r2 = ((1.0 - tau) ** 2 + tau**2) / (1.0 - tau) ** 2
    return torch.nan_to_num(c * inv_r2, posinf=limit).clamp(max=limit)


def _padded_prefix(prefix: Tensor, like: Tensor) -> Tensor:
    """The prefix as [B, T, A] of ``like``'s shape, zero-padded past its end (weights are 0 there anyway)."""
    if prefix.dim() == 2:
        prefix = prefix.unsqueeze(0)
    prefix = prefix.to(device=like.device, dtype=like.dtype)
    if prefix.shape[0] not in (1, like.shape[0]):
        raise PolicyError(f"rtc prefix has batch {prefix.shape[0]} for a batch of {like.shape[0]}")
    out = torch.zeros_like(like)
    t, a = min(prefix.shape[1], like.shape[1]), min(prefix.shape[2], like.shape[2])
    out[:, :t, :a] = prefix[:, :t, :a]
    return out


def guided_step(velocity_fn: VelocityFn, x_t: Tensor, t: Tensor, rtc: RTCGuidance | PreparedRTC) -> Tensor:
    """The RTC-guided velocity at ``x_t``: ``v - w(t) * J^T [(prefix - x1) * weights]``, where
    ``x1 = x_t - t * v`` is the clean chunk the model predicts and J = d x1 / d x_t.

    As lerobot 0.6.1 computes it, v is held constant in J (lerobot evaluates the model before x_t
    requires grad), so J = I and the correction is the weighted error itself: no backward pass through
    the model. ``full_jacobian`` takes the vector-Jacobian product through the model instead (the
    paper's Kinetix code); it needs autograd, so call it under ``torch.no_grad()``, not inference_mode.
    A `PreparedRTC` is the identity-Jacobian form on tensors made once per chunk (CUDA-graph safe).
    """
    prepared = rtc if isinstance(rtc, PreparedRTC) else rtc.prepare(x_t)
    config = rtc.config if isinstance(rtc, RTCGuidance) else None
    if config is not None and config.full_jacobian:
        if torch.is_inference_mode_enabled():
            raise PolicyError(
                "rtc full_jacobian needs autograd (a vector-Jacobian product through the model): call "
                "predict_action_chunk under torch.no_grad(), not torch.inference_mode()"
            )
        with torch.enable_grad():  # inference runs under no_grad; the VJP needs a graph
            x = x_t.detach().clone().requires_grad_(True)
            v = velocity_fn(x, t)
            x1 = x - t.view(-1, 1, 1) * v
            error = (prepared.prefix - x1) * prepared.weights
            (correction,) = torch.autograd.grad(x1, x, error.detach())
        v = v.detach()
    else:
        v = velocity_fn(x_t, t)
        error = correction = (prepared.prefix - (x_t - t.view(-1, 1, 1) * v)) * prepared.weights
    w = guidance_weight(t.float(), prepared.max_guidance_weight).to(x_t.dtype).view(-1, 1, 1)
    if config is not None and config.debug:
        assert isinstance(rtc, RTCGuidance)
        if len(rtc.trace) >= config.debug_maxlen:
            rtc.trace.popleft()
        rtc.trace.append({"t": float(t[0]), "guidance_weight": float(w[0]), "err": float(error.abs().max())})
    return v - w * correction


def guided_denoise(
    velocity_fn: VelocityFn, noise: Tensor, num_steps: int, rtc: RTCGuidance | PreparedRTC | None = None
) -> Tensor:
    """Euler-integrate ``velocity_fn`` from ``noise`` (t = 1) to actions (t = 0) in ``num_steps`` steps; with
    an active ``rtc`` each step's velocity is guided toward its committed prefix. [B, T, A] -> [B, T, A]."""
    if num_steps < 1:
        raise PolicyError(f"num_steps must be >= 1, got {num_steps}")
    guided = rtc is not None and rtc.active
    if guided and isinstance(rtc, RTCGuidance) and rtc.graphable:
        rtc = rtc.prepare(noise)  # once per chunk, not per step
    dt = -1.0 / num_steps
    x_t = noise
    for step in range(num_steps):
        # t from the step index, not accumulated: no float drift below 0 at the last step
        t = torch.full((noise.shape[0],), 1.0 - step / num_steps, device=noise.device, dtype=noise.dtype)
        v = guided_step(velocity_fn, x_t, t, rtc) if guided else velocity_fn(x_t, t)  # type: ignore[arg-type]
        x_t = x_t + dt * v
    return x_t


def accepts_rtc(policy: Any) -> bool:
    """Whether ``policy.predict_action_chunk`` takes an ``rtc`` argument (flow-matching policies do)."""
    import inspect

    method = getattr(policy, "predict_action_chunk", None)
    if method is None:
        return False
    try:
        return "rtc" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


__all__ = [
    "SCHEDULES",
    "PreparedRTC",
    "RTCConfig",
    "RTCGuidance",
    "accepts_rtc",
    "guidance_weight",
    "guided_denoise",
    "guided_step",
    "prefix_weights",
]
