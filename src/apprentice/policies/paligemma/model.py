"""PaliGemma (SigLIP + Gemma) and a Gemma action expert that attend jointly, layer by layer.

Both models are stock transformers classes built from config objects (PaliGemmaForConditionalGeneration,
GemmaForCausalLM); only their RMSNorms are swapped for `AdaRMSNorm` (same parameter names; the expert's
is time-conditioned in π0.5). Neither model's own forward is used: in each layer the prefix tokens
(images + language, through PaliGemma's weights) and the suffix tokens (state/actions, through the
expert's) are projected to q/k/v separately, attend as one sequence under the π mask, and go back through
their own model's output projection and MLP. The two must share head count and head size.

At inference the prefix runs once and its per-layer keys/values are kept (`PrefixCache`); each denoising
step then runs the suffix alone through the expert against that cache.

Module names follow lerobot's `PaliGemmaWithExpertModel`, so state-dict keys are
`paligemma.model.{vision_tower,multi_modal_projector,language_model}.…`, `paligemma.lm_head.weight`,
`gemma_expert.model.layers.…`, `gemma_expert.lm_head.weight`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.checkpointing import Checkpointable
from apprentice.policies.paligemma.masks import attention_bias
from apprentice.policies.paligemma.norm import AdaRMSNorm, gated_residual
from apprentice.policies.paligemma.variants import GemmaVariant, gemma_config, paligemma_config

# Kept float32 when the rest is cast to bf16 (lerobot's list): SigLIP, the projector and every norm.
FLOAT32_PARAMS = ("vision_tower", "multi_modal_projector", "input_layernorm", "post_attention_layernorm", "model.norm")


@dataclass
class PrefixCache:
    """Per-layer rotated keys/values of the prefix, (B, kv_heads, P, head_dim) each, and its pad mask (B, P)."""

    keys: list[Tensor]
    values: list[Tensor]
    pad_masks: Tensor


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _swap_norms(model: nn.Module, cfg: object, cond_dim: int | None) -> None:
    """Replace a GemmaModel's RMSNorms (per layer and final) by AdaRMSNorm; names and init are unchanged."""
    eps = cfg.rms_norm_eps  # type: ignore[attr-defined]
    width = cfg.hidden_size  # type: ignore[attr-defined]
    for layer in model.layers:
        layer.input_layernorm = AdaRMSNorm(width, eps, cond_dim)
        layer.post_attention_layernorm = AdaRMSNorm(width, eps, cond_dim)
    model.norm = AdaRMSNorm(width, eps, cond_dim)


class _VisionModelScope(nn.Module):
    """Puts SigLIP under `.vision_model` where transformers no longer does (5.2x): the key names stay
    `vision_tower.vision_model.…`, lerobot's (its pinned transformers 5.5 has that level)."""

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.vision_model = tower

    def forward(self, *args: object, **kwargs: object) -> object:
        return self.vision_model(*args, **kwargs)


class PaliGemmaWithExpert(Checkpointable):
    """The VLM + action expert pair; `forward` runs prefix, suffix or both through all layers."""

    def __init__(
        self,
        vlm: GemmaVariant,
        expert: GemmaVariant,
        *,
        image_size: int,
        expert_adarms: bool = False,
        precision: str = "float32",
        freeze_vision_encoder: bool = False,
        train_expert_only: bool = False,
    ) -> None:
        super().__init__()
        from transformers import GemmaForCausalLM, PaliGemmaForConditionalGeneration

        if (vlm.num_heads, vlm.num_kv_heads, vlm.head_dim) != (expert.num_heads, expert.num_kv_heads, expert.head_dim):
            raise ValueError("the VLM and the action expert must have the same heads/kv heads/head_dim")
        self.freeze_vision_encoder, self.train_expert_only = freeze_vision_encoder, train_expert_only
        self.paligemma = PaliGemmaForConditionalGeneration(paligemma_config(vlm, image_size))
        expert_cfg = gemma_config(GemmaVariant(**{**expert.__dict__, "vocab_size": vlm.vocab_size}))
        if not hasattr(self.paligemma.model.vision_tower, "vision_model"):
            self.paligemma.model.vision_tower = _VisionModelScope(self.paligemma.model.vision_tower)
        self.gemma_expert = GemmaForCausalLM(expert_cfg)
        self.gemma_expert.model.embed_tokens = None  # the expert reads embeddings, never token ids
        _swap_norms(self.language_model, self.paligemma.config.text_config, None)
        _swap_norms(self.gemma_expert.model, expert_cfg, expert.width if expert_adarms else None)
        self.num_heads, self.num_kv_heads, self.head_dim = vlm.num_heads, vlm.num_kv_heads, vlm.head_dim
        if precision == "bfloat16":
            self.to(torch.bfloat16)
            for name, p in self.named_parameters():
                if any(s in name for s in FLOAT32_PARAMS):
                    p.data = p.data.float()
        elif precision != "float32":
            raise ValueError(f"precision={precision!r}: use 'bfloat16' or 'float32'")
        if freeze_vision_encoder:
            self.vision_tower.requires_grad_(False)
        if train_expert_only:
            self.paligemma.requires_grad_(False)
        self.train(True)

    @property
    def language_model(self) -> nn.Module:
        return self.paligemma.model.language_model

    @property
    def vision_tower(self) -> nn.Module:
        return self.paligemma.model.vision_tower

    def train(self, mode: bool = True) -> PaliGemmaWithExpert:
        super().train(mode)
        # Frozen parts stay in eval mode (no dropout; what lerobot does).
        if self.freeze_vision_encoder:
            self.vision_tower.eval()
        if self.train_expert_only:
            self.paligemma.eval()
        return self

    # --------------------------------------------------------------------------- embeddings
    def embed_image(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, patches, width): SigLIP + projector (PaliGemma's own scaling)."""
        out = self.paligemma.model.get_image_features(pixels.to(next(self.vision_tower.parameters()).dtype))
        feats = out if isinstance(out, Tensor) else out.pooler_output
        return feats

    def embed_language_tokens(self, tokens: Tensor) -> Tensor:
        return self.language_model.get_input_embeddings()(tokens)

    # ------------------------------------------------------------------------------ layers
    def _layer(
        self,
        index: int,
        hiddens: list[Tensor | None],
        cond: Tensor | None,
        bias: Tensor,
        cos: Tensor,
        sin: Tensor,
        past: tuple[Tensor, Tensor] | None,
    ) -> tuple[list[Tensor | None], Tensor, Tensor]:
        layers = (self.language_model.layers[index], self.gemma_expert.model.layers[index])
        conds = (None, cond)
        qs, ks, vs, gates, lens = [], [], [], [], []
        for stream, h in enumerate(hiddens):
            if h is None:
                continue
            layer = layers[stream]
            x, gate = layer.input_layernorm(h, conds[stream])
            attn = layer.self_attn
            shape = (*x.shape[:-1], -1, self.head_dim)
            qs.append(attn.q_proj(x).view(shape).transpose(1, 2))  # (B, H, L, D)
            ks.append(attn.k_proj(x).view(shape).transpose(1, 2))  # (B, KV, L, D)
            vs.append(attn.v_proj(x).view(shape).transpose(1, 2))
            gates.append(gate)
            lens.append(h.shape[1])
        q, k, v = torch.cat(qs, dim=2), torch.cat(ks, dim=2), torch.cat(vs, dim=2)
        cos, sin = cos[:, None].to(q.dtype), sin[:, None].to(q.dtype)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        new_k, new_v = k, v
        if past is not None:
            k, v = torch.cat([past[0].to(k.dtype), k], dim=2), torch.cat([past[1].to(v.dtype), v], dim=2)
        # Gemma shares each KV head among num_heads / num_kv_heads query heads (MQA for these sizes). The
        # heads are expanded here rather than with SDPA's enable_gqa, which CUDA's memory-efficient kernel
        # (the one that takes an arbitrary mask) does not accept, so it would fall back to the math kernel.
        rep = self.num_heads // self.num_kv_heads
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.head_dim**-0.5)
        out = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], self.num_heads * self.head_dim)
        outs: list[Tensor | None] = []
        start, j = 0, 0
        for stream, h in enumerate(hiddens):
            if h is None:
                outs.append(None)
                continue
            layer = layers[stream]
            o = layer.self_attn.o_proj(out[:, start : start + lens[j]].to(layer.self_attn.o_proj.weight.dtype))
            h = gated_residual(h, o.to(h.dtype), gates[j])
            x, gate = layer.post_attention_layernorm(h, conds[stream])
            h = gated_residual(h, layer.mlp(x.to(layer.mlp.up_proj.weight.dtype)).to(h.dtype), gate)
            outs.append(h)
            start += lens[j]
            j += 1
        return outs, new_k, new_v

    def forward(
        self,
        prefix: Tensor | None,
        suffix: Tensor | None,
        mask_2d: Tensor,
        positions: Tensor,
        *,
        adarms_cond: Tensor | None = None,
        cache: PrefixCache | None = None,
        keep_cache: bool = False,
    ) -> tuple[Tensor | None, Tensor | None, PrefixCache | None]:
        """Run (B, P, W_vlm) prefix and/or (B, S, W_expert) suffix embeddings through every layer.

        `mask_2d` (B, Q, K) bool over the queries given and the keys (cache first); `positions` (B, Q).
        Returns the final-normed prefix and suffix outputs and, with `keep_cache`, the prefix's cache.
        """
        ref = prefix if prefix is not None else suffix
        if ref is None:
            raise ValueError("PaliGemmaWithExpert needs a prefix, a suffix or both")
        dtype = self.language_model.layers[0].self_attn.q_proj.weight.dtype
        # bf16 parameters (config dtype): activations enter in bf16 too, as lerobot casts them.
        hiddens = [h.to(dtype) if h is not None and dtype == torch.bfloat16 else h for h in (prefix, suffix)]
        cos, sin = self.language_model.rotary_emb(ref, positions)
        device = ref.device.type
        compute = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else dtype
        bias = attention_bias(mask_2d, compute)  # built once, shared by every layer
        keys, values = [], []
        for i in range(len(self.language_model.layers)):
            past = (cache.keys[i], cache.values[i]) if cache is not None else None
            hiddens, k, v = self.run(self._layer, i, hiddens, adarms_cond, bias, cos, sin, past)
            if keep_cache:
                keys.append(k)
                values.append(v)
        pre = self.language_model.norm(hiddens[0])[0] if hiddens[0] is not None else None
        suf = self.gemma_expert.model.norm(hiddens[1], adarms_cond)[0] if hiddens[1] is not None else None
        new_cache = PrefixCache(keys, values, torch.empty(0)) if keep_cache else None
        return pre, suf, new_cache

