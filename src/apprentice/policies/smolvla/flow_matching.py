"""SmolVLA's flow-matching model (LeRobot's `VLAFlowMatching`, same submodule names): the prefix
[image tokens per camera, language tokens, one state token] goes through the VLM, the suffix [chunk_size
noisy-action tokens fused with the timestep] through the action expert, which predicts the velocity.

Time runs from 1 (pure noise) to 0 (the actions): x_t = t * noise + (1 - t) * actions, and the model
learns v = noise - actions. Sampling integrates dx/dt = v with Euler steps dt = -1/num_steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.rtc import PreparedRTC, RTCGuidance, guided_denoise
from apprentice.policies.smolvla.configuration_smolvla import SmolVLAConfig
from apprentice.policies.smolvla.vlm_with_expert import PrefixCache, SmolVLMWithExpert

VelocityFn = Callable[[Tensor, Tensor], Tensor]


def sinusoidal_time_embedding(t: Tensor, dim: int, min_period: float, max_period: float) -> Tensor:
    """(B,) times -> (B, dim) [sin, cos] features with periods log-spaced in [min_period, max_period]."""
    dtype = torch.float64 if t.device.type not in ("mps",) else torch.float32  # float64 as LeRobot/openpi
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=dtype, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2 * math.pi / period)[None, :] * t[:, None].to(dtype)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def block_mask(pad: Tensor, blocks: Tensor) -> Tensor:
    """(B, L) validity and block starts (1 = a new block) -> (B, L, L) bool: token i sees token j when j is
    valid and not in a later block (big_vision's prefix-LM mask)."""
    cum = torch.cumsum(blocks, dim=1)
    return (cum[:, None, :] <= cum[:, :, None]) & (pad[:, None, :] & pad[:, :, None])


def sample_time(batch: int, device: torch.device) -> Tensor:
    """Beta(1.5, 1) * 0.999 + 0.001: more samples near t=1 (noisy), as openpi/LeRobot.

    Drawn on `device` by inverting Beta(a, 1)'s CDF x^a (u^(1/a), u uniform) — the same distribution as
    LeRobot's torch.distributions.Beta, but with no CPU tensor copied over, so a CUDA graph can record it and
    draw new times on every replay."""
    u = torch.rand(batch, device=device, dtype=torch.float32)
    return u.pow(1 / 1.5) * 0.999 + 0.001


class SmolVLAFlowMatching(nn.Module):
    def __init__(self, config: SmolVLAConfig, vlm_with_expert: SmolVLMWithExpert, image_tokens: Tensor | None) -> None:
        super().__init__()
        self.config = config
        self.vlm_with_expert = vlm_with_expert
        hidden = vlm_with_expert.config.text_config.hidden_size
        expert = vlm_with_expert.expert_hidden_size
        self.state_proj = nn.Linear(config.max_state_dim, hidden)
        self.action_in_proj = nn.Linear(config.max_action_dim, expert)
        self.action_out_proj = nn.Linear(expert, config.max_action_dim)
        self.action_time_mlp_in = nn.Linear(expert * 2, expert)
        self.action_time_mlp_out = nn.Linear(expert, expert)
        self.state_proj.requires_grad_(config.train_state_proj)
        # add_image_special_tokens: [<fake_token_around_image>, <global-img>] before and the fake token after
        # each camera's tokens; ids from the tokenizer (None when the option is off).
        self.register_buffer("image_tokens", image_tokens, persistent=False)

    # ------------------------------------------------------------------ embeddings
    def embed_prefix(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, token_mask: Tensor, state: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """-> embeddings (B, Lp, H), validity (B, Lp), block starts (B, Lp) (state starts its own block)."""
        vlm = self.vlm_with_expert
        embs, pads, blocks = [], [], []
        b = state.shape[0]

        def add(x: Tensor, valid: Tensor, block: int = 0) -> None:
            embs.append(x)
            pads.append(valid)
            blocks.append(torch.full(valid.shape, block, dtype=torch.bool, device=valid.device))

        for img, img_mask in zip(images, img_masks):
            if self.image_tokens is not None:
                start = vlm.embed_language_tokens(self.image_tokens[:2])[None].expand(b, -1, -1)
                add(start, torch.ones(b, 2, dtype=torch.bool, device=start.device))
            emb = vlm.embed_image(img)
            # LeRobot scales by a tensor of the embedding's dtype; torch.full makes it on the device (capturable).
            emb = emb * torch.full((), emb.shape[-1] ** 0.5, dtype=emb.dtype, device=emb.device)
            add(emb, img_mask[:, None].expand(b, emb.shape[1]))
            if self.image_tokens is not None:
                end = vlm.embed_language_tokens(self.image_tokens[:1])[None].expand(b, -1, -1)
                add(end, torch.ones(b, 1, dtype=torch.bool, device=end.device))
        lang = vlm.embed_language_tokens(tokens)
        add(lang * math.sqrt(lang.shape[-1]), token_mask)
        state_emb = self.state_proj(state)[:, None, :]
        add(state_emb, torch.ones(b, 1, dtype=torch.bool, device=state.device), block=1)
        # The prefix's residual stream stays float32, also when the frozen VLM is stored in bf16 (its token
        # embeddings then come out bf16) — as with float32 weights, where cat promotes to the widest dtype.
        emb = torch.cat(embs, dim=1).float()
        pad, block = torch.cat(pads, dim=1), torch.cat(blocks, dim=1)
        if emb.shape[1] < self.config.prefix_length:
            extra = self.config.prefix_length - emb.shape[1]
            emb = F.pad(emb, (0, 0, 0, extra))
            pad, block = F.pad(pad, (0, extra)), F.pad(block, (0, extra))
        return emb, pad, block

    def embed_suffix(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Noisy actions (B, chunk, A) and times (B,) -> action tokens (B, chunk, He)."""
        action = self.action_in_proj(x_t)
        time = sinusoidal_time_embedding(t, action.shape[-1], self.config.min_period, self.config.max_period)
        time = time.to(action.dtype)[:, None, :].expand_as(action)
        fused = F.silu(self.action_time_mlp_in(torch.cat([action, time], dim=2)))
        return self.action_time_mlp_out(fused)

    # ------------------------------------------------------------------ training
    def forward(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, token_mask: Tensor, state: Tensor,
        actions: Tensor, noise: Tensor | None = None, time: Tensor | None = None,
    ) -> Tensor:
        """Per-element flow-matching loss (B, chunk, max_action_dim)."""
        if noise is None:
            noise = torch.randn_like(actions, dtype=torch.float32)
        if time is None:
            time = sample_time(actions.shape[0], actions.device)
        t = time[:, None, None]
        x_t = t * noise + (1 - t) * actions
        target = noise - actions
        prefix, prefix_pad, prefix_block = self.embed_prefix(images, img_masks, tokens, token_mask, state)
        suffix = self.embed_suffix(x_t, time)
        suffix_pad = torch.ones(suffix.shape[:2], dtype=torch.bool, device=suffix.device)
        pad = torch.cat([prefix_pad, suffix_pad], dim=1)
        mask = block_mask(pad, torch.cat([prefix_block, suffix_pad], dim=1))
        positions = torch.cumsum(pad, dim=1) - 1
        out, _ = self.vlm_with_expert(prefix, suffix, mask, positions)
        v = self.action_out_proj(out[:, -self.config.chunk_size :].float())
        return F.mse_loss(target, v, reduction="none")

    # ------------------------------------------------------------------ inference
    def make_velocity_fn(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, token_mask: Tensor, state: Tensor
    ) -> VelocityFn:
        """Run the prefix once and return v(x_t (B, chunk, max_action_dim), t (B,)) -> velocity (float32)."""
        prefix, prefix_pad, prefix_block = self.embed_prefix(images, img_masks, tokens, token_mask, state)
        positions = torch.cumsum(prefix_pad, dim=1) - 1
        cache: PrefixCache | None = None
        if self.config.use_cache:
            _, cache = self.vlm_with_expert(
                prefix, None, block_mask(prefix_pad, prefix_block), positions, fill_cache=True
            )
            cache = self.vlm_with_expert.precompute_expert_kv(cache)
        chunk = self.config.chunk_size
        offsets = prefix_pad.sum(dim=-1, keepdim=True)

        def velocity(x_t: Tensor, t: Tensor) -> Tensor:
            suffix = self.embed_suffix(x_t, t)
            b, ls = suffix.shape[:2]
            if cache is None:  # use_cache=false: the whole sequence every step (slow; LeRobot's option)
                suffix_pad = torch.ones(b, ls, dtype=torch.bool, device=suffix.device)
                pad = torch.cat([prefix_pad, suffix_pad], dim=1)
                mask = block_mask(pad, torch.cat([prefix_block, suffix_pad], dim=1))
                out, _ = self.vlm_with_expert(prefix, suffix, mask, torch.cumsum(pad, dim=1) - 1)
            else:
                # Actions see every valid prefix token and, causally, each other (each is its own block).
                causal = torch.ones(ls, ls, dtype=torch.bool, device=suffix.device).tril()
                mask = torch.cat([prefix_pad[:, None, :].expand(b, ls, -1), causal.expand(b, ls, ls)], dim=2)
                pos = offsets + torch.arange(ls, device=suffix.device)[None, :]
                out, _ = self.vlm_with_expert(None, suffix, mask, pos, cache=cache)
            return self.action_out_proj(out[:, -chunk:].float())

        return velocity

    def sample(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, token_mask: Tensor, state: Tensor,
        noise: Tensor, rtc: RTCGuidance | PreparedRTC | None = None,
    ) -> Tensor:
        """Noise (B, chunk, max_action_dim) -> the denoised chunk (normalised units), RTC-guided when `rtc` is
        active: `guided_denoise` is the one sampler, eager or recorded in a CUDA graph (chunk_graph.py)."""
        return guided_denoise(self.make_velocity_fn(images, img_masks, tokens, token_mask, state), noise,
                              self.config.num_steps, rtc)
