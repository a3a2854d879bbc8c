"""SmolVLM2 cut to its first layers, with a smaller "action expert" transformer beside it.

Both are stock `transformers` modules built from a config (SmolVLMForConditionalGeneration, and a LlamaModel
for the expert), so parameter names are LeRobot's (`vlm.model.text_model.layers.3.self_attn.q_proj.weight`,
`lm_expert.layers.3...`). Only the layer loop is ours: layer i of the VLM runs over the prefix (image,
language and state tokens) and layer i of the expert over the action tokens, and the expert sees the
prefix in one of two ways:

- self-attention layers (every `self_attn_every_n_layers`-th, or all with attention_mode="self_attn"):
  prefix and action tokens are concatenated into one attention (with the block mask the caller gives);
- cross-attention layers: the expert's queries attend to the VLM layer's (RoPE'd) keys/values of the
  prefix, projected to the expert's width by the expert's own k_proj/v_proj.

The prefix never attends to the actions, so at inference its K/V are computed once per chunk (`PrefixCache`)
and each denoising step runs the expert alone. RoPE, attention scaling and masking follow LeRobot's
SmolVLA (its own RoPE with wavelength 10 000, not the text config's rope_theta) so outputs match.

Only the K/V of the last VLM layer that has an expert layer reach the actions: that layer's queries, output
projection, post-attention norm and MLP, the layers after it, the text model's final norm and lm_head never
do (LeRobot freezes them for that reason). They are not computed, and their weights live in host memory
outside the module tree (`host_modules`; 57 M parameters at smolvla_base's size, 113 MB in bf16); the
state dict still carries them, so checkpoints keep LeRobot's keys and values both ways.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.checkpointing import Checkpointable
from apprentice.policies.config import PolicyError

ROPE_WAVELENGTH = 10_000


def apply_rope(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary embedding of x (B, L, H, D) at integer positions (B, L), computed in float32."""
    half = x.shape[-1] // 2
    exponents = (2.0 / x.shape[-1]) * torch.arange(half, dtype=torch.float32, device=x.device)
    radians = positions[..., None].float() / (ROPE_WAVELENGTH**exponents)[None, None, :]
    sin, cos = torch.sin(radians)[..., None, :], torch.cos(radians)[..., None, :]  # (B, L, 1, D/2)
    x1, x2 = x.float().split(half, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """q (B, Lq, H, D), k/v (B, Lk, Hkv, D), mask bool (B, Lq, Lk) -> (B, Lq, H*D).

    SDPA instead of LeRobot's eager float32 softmax (same math; it avoids materialising the (B, H, Lq, Lk)
    weights). The mask is additive, not boolean: a fully masked row (a padding token's query) then gets a
    uniform softmax as in eager attention instead of NaN, which would leak through the next layer's V."""
    b, lq, h, d = q.shape
    neg = torch.finfo(q.dtype).min / 2  # /2: adding a logit must not overflow to -inf
    bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, neg)[:, None]
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias, enable_gqa=k.shape[2] != h
    )
    return out.transpose(1, 2).reshape(b, lq, h * d)


def expert_intermediate_size(hidden: int, ffn_multiplier: int = 4, multiple_of: int = 256) -> int:
    """The expert MLP width LeRobot derives from its hidden size (LLaMA's 2/3 * 4h rounded up to 256)."""
    hidden = int(ffn_multiplier * int(2 * hidden / 3))
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


@dataclass
class PrefixCache:
    """Per VLM layer: the prefix's RoPE'd keys/values (B, Lp, Hkv, D); for cross-attention layers also
    those keys/values already projected by the expert (computed once per chunk, not once per step)."""

    keys: list[Tensor]
    values: list[Tensor]
    expert_kv: dict[int, tuple[Tensor, Tensor]]


class SmolVLMWithExpert(Checkpointable):
    """`vlm` (SmolVLMForConditionalGeneration, first `num_vlm_layers` text layers) + `lm_expert` (LlamaModel)."""

    def __init__(
        self,
        vlm_config: object,
        *,
        num_vlm_layers: int,
        num_expert_layers: int,
        expert_width_multiplier: float,
        attention_mode: str,
        self_attn_every_n_layers: int,
        freeze_vision_encoder: bool,
        train_expert_only: bool,
        vlm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoModel, SmolVLMForConditionalGeneration

        self.vlm = vlm if vlm is not None else SmolVLMForConditionalGeneration(vlm_config)
        text = self.vlm.model.text_model
        if num_vlm_layers > 0:
            text.layers = text.layers[:num_vlm_layers]
        self.num_vlm_layers = len(text.layers)
        self.config = self.vlm.config
        text_cfg = self.config.text_config
        expert_cfg = copy.deepcopy(text_cfg)
        expert_cfg.hidden_size = int(text_cfg.hidden_size * expert_width_multiplier)
        expert_cfg.intermediate_size = expert_intermediate_size(expert_cfg.hidden_size)
        expert_cfg.num_hidden_layers = self.num_vlm_layers
        if num_expert_layers > 0:
            if self.num_vlm_layers % num_expert_layers:
                raise PolicyError(
                    f"smolvla: num_vlm_layers={self.num_vlm_layers} is not a multiple of "
                    f"num_expert_layers={num_expert_layers}; choose a divisor"
                )
            expert_cfg.num_hidden_layers = num_expert_layers
        self.lm_expert = AutoModel.from_config(expert_cfg)
        self.num_expert_layers = len(self.lm_expert.layers)
        self.cross = "cross" in attention_mode
        self.self_attn_every_n_layers = self_attn_every_n_layers
        head_dim = text_cfg.head_dim
        if self.cross:  # the expert's k/v read the VLM's keys/values, so they take the VLM's K/V width
            kv_in = text_cfg.num_key_value_heads * head_dim
            kv_out = expert_cfg.num_key_value_heads * expert_cfg.head_dim
            for i, layer in enumerate(self.lm_expert.layers):
                if not self._is_self_attn(i):
                    layer.self_attn.k_proj = nn.Linear(kv_in, kv_out, bias=expert_cfg.attention_bias)
                    layer.self_attn.v_proj = nn.Linear(kv_in, kv_out, bias=expert_cfg.attention_bias)
        self.lm_expert.embed_tokens = None  # the expert embeds actions, never tokens
        self.expert_hidden_size = expert_cfg.hidden_size
        self.freeze_vision_encoder = freeze_vision_encoder
        self.train_expert_only = train_expert_only
        self._set_requires_grad()
        self.host_modules: dict[str, nn.Module] = {}
        self._keep_unused_on_host()
        self.register_state_dict_post_hook(_save_host_modules)
        self.register_load_state_dict_pre_hook(_load_host_modules)

    # ------------------------------------------------------------------ parameters and modes
    def _is_self_attn(self, i: int) -> bool:
        return not self.cross or (self.self_attn_every_n_layers > 0 and i % self.self_attn_every_n_layers == 0)

    def _set_requires_grad(self) -> None:
        vision = self.vlm.model.vision_model
        if self.freeze_vision_encoder:
            vision.requires_grad_(False)
        if self.train_expert_only:
            self.vlm.requires_grad_(False)
        else:
            # As LeRobot: the VLM's last layer, lm_head and final norm stay frozen. Most of them never influence
            # the actions (DDP would wait for their gradients; they are kept on the host, _keep_unused_on_host);
            # the last layer's K/V do, but LeRobot freezes the whole layer.
            frozen = ["lm_head", "text_model.norm.weight", f"text_model.layers.{self.num_vlm_layers - 1}."]
            if self.num_vlm_layers != self.num_expert_layers and self.num_vlm_layers % self.num_expert_layers == 0:
                frozen.append(f"text_model.layers.{self.num_vlm_layers - 2}.")
            for name, p in self.vlm.named_parameters():
                if any(f in name for f in frozen):
                    p.requires_grad_(False)

    def _keep_unused_on_host(self) -> None:
        """Move the modules that never reach the actions (see the module docstring) out of the module tree, to
        the CPU. Each stays a plain attribute at its old place, not a child: parameters(), .to(), DDP and FSDP
        skip it, store_frozen_in leaves it in its dtype, and attribute paths still reach it (torch.distributed.
        checkpoint resolves state-dict keys with getattr). `host_modules` maps each one's path to it."""
        text = self.vlm.model.text_model
        n = len(text.layers)
        last = max(i for i in range(n) if self._expert_layer(i) is not None)
        base = "vlm.model.text_model"
        paths = [f"{base}.layers.{last}.{name}"
                 for name in ("self_attn.q_proj", "self_attn.o_proj", "post_attention_layernorm", "mlp")]
        paths += [f"{base}.layers.{j}" for j in range(last + 1, n)] + [f"{base}.norm"]
        if self.vlm.lm_head.weight is not text.embed_tokens.weight:  # tied, it is the token embedding
            paths.append("vlm.lm_head")
        for path in paths:
            parent_path, _, name = path.rpartition(".")
            parent = self.get_submodule(parent_path)
            module = getattr(parent, name).requires_grad_(False).to("cpu")
            delattr(parent, name)
            parent.__dict__[name] = module
            self.host_modules[path] = module

    def train(self, mode: bool = True) -> SmolVLMWithExpert:
        super().train(mode)
        if self.freeze_vision_encoder:
            self.vlm.model.vision_model.eval()
        if self.train_expert_only:
            self.vlm.eval()
        return self

    # ------------------------------------------------------------------ embeddings
    def embed_image(self, pixels: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, tokens, text hidden) through the vision encoder and connector.

        The vision transformer's own forward is unrolled (embeddings, encoder, post-layernorm) because it builds
        its all-ones patch mask on the CPU and copies it over, and its mask helper may test the mask on the host,
        and transformers releases before ~5.2x place the position ids by boolean-mask assignment (a host sync):
        none is allowed inside a CUDA graph. Every patch is valid here (images are resized to the full size),
        so the encoder needs no attention mask; the outputs are the same."""
        vision = self.vlm.model.vision_model
        embeddings = vision.embeddings
        pixels = pixels.to(embeddings.patch_embedding.weight.dtype)
        hidden = vision.encoder(inputs_embeds=vision_embeddings(embeddings, pixels))[0]
        connector = self.vlm.model.connector  # trainable (fp32) when only the vision tower is stored in bf16
        return connector(vision.post_layernorm(hidden).to(next(connector.parameters()).dtype))

    def embed_language_tokens(self, tokens: Tensor) -> Tensor:
        return self.vlm.model.text_model.get_input_embeddings()(tokens)

    def _expert_layer(self, i: int) -> nn.Module | None:
        """Expert layer paired with VLM layer i (fewer expert layers: every k-th VLM layer has one)."""
        every = self.num_vlm_layers // self.num_expert_layers
        if every > 0 and i % every != 0:
            return None
        return self.lm_expert.layers[i // every if every > 0 else i]

    # ------------------------------------------------------------------ the layer loop
    def forward(
        self,
        prefix: Tensor | None,
        suffix: Tensor | None,
        mask: Tensor,
        positions: Tensor,
        cache: PrefixCache | None = None,
        fill_cache: bool = False,
    ) -> tuple[Tensor | None, PrefixCache | None]:
        """One pass over the VLM layers the expert reads.

        Training: prefix (B, Lp, Hv) and suffix (B, Ls, He), mask (B, Lp+Ls, Lp+Ls), positions (B, Lp+Ls).
        Prefill: prefix only with fill_cache=True -> the cache. Denoising: suffix only with `cache`,
        mask (B, Ls, Lp+Ls), positions (B, Ls). Returns the final-normed suffix output and the cache.
        """
        new_cache = PrefixCache([], [], {}) if fill_cache else None
        vlm_layers = self.vlm.model.text_model.layers  # those after the last one the expert reads are on the host
        for i in range(len(vlm_layers)):
            layer_args = (vlm_layers[i], self._expert_layer(i), i, prefix, suffix, mask, positions, cache, new_cache)
            if fill_cache or self._is_self_attn(i):
                prefix, suffix = self.run(self._joint_layer, *layer_args)
            else:
                prefix, suffix = self.run(self._cross_layer, *layer_args)
        if suffix is not None:
            suffix = self.lm_expert.norm(suffix)
        return suffix, new_cache if fill_cache else cache

    @staticmethod
    def _qkv(layer: nn.Module, x: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """Queries (None where q_proj is on the host: the last layer the expert reads), keys, values."""
        attn = layer.self_attn
        h = layer.input_layernorm(x).to(attn.k_proj.weight.dtype)  # a bf16-stored frozen VLM under fp32 inputs
        shape = (*h.shape[:-1], -1, attn.head_dim)
        q_proj = attn._modules.get("q_proj")  # a host-kept module is an attribute, not a child
        q = q_proj(h).view(shape) if q_proj is not None else None
        return q, attn.k_proj(h).view(shape), attn.v_proj(h).view(shape)

    @staticmethod
    def _finish(layer: nn.Module, x: Tensor, att: Tensor) -> Tensor:
        """Attention output projection, residual, MLP, residual (LLaMA's pre-norm block)."""
        x = x + layer.self_attn.o_proj(att.to(layer.self_attn.o_proj.weight.dtype))
        return x + layer.mlp(layer.post_attention_layernorm(x).to(layer.mlp.gate_proj.weight.dtype))

    def _joint_layer(
        self, vlm_layer: nn.Module, expert_layer: nn.Module | None, i: int, prefix: Tensor | None,
        suffix: Tensor | None, mask: Tensor, positions: Tensor, cache: PrefixCache | None,
        new_cache: PrefixCache | None,
    ) -> tuple[Tensor | None, Tensor | None]:
        out = [prefix, suffix]
        live = [(j, layer, x) for j, (layer, x) in enumerate(zip((vlm_layer, expert_layer), out))
                if x is not None and layer is not None]
        if not live:
            return prefix, suffix
        qkv = [self._qkv(layer, x) for _, layer, x in live]
        k = torch.cat([t[1] for t in qkv], dim=1)
        v = torch.cat([t[2] for t in qkv], dim=1)
        length = k.shape[1]
        k = apply_rope(k, positions[:, :length])
        if new_cache is not None:
            new_cache.keys.append(k)
            new_cache.values.append(v)
        asking = [(j, layer, x, q) for (j, layer, x), (q, _, _) in zip(live, qkv) if q is not None]
        for j, _, _ in live:  # a stream without queries (the VLM at its last layer) has no output
            out[j] = None
        if not asking:
            return out[0], out[1]
        # Only the VLM stream, which comes first, can lack queries: the queries are the sequence's last rows.
        start = length - sum(x.shape[1] for _, _, x, _ in asking)
        q = apply_rope(torch.cat([q for *_, q in asking], dim=1), positions[:, start:length])
        if cache is not None:  # denoising: the actions attend to the cached prefix and to themselves
            k = torch.cat([cache.keys[i], k], dim=1)
            v = torch.cat([cache.values[i], v], dim=1)
            att = attention(q, k, v, mask)
        else:
            att = attention(q, k, v, mask[:, start:length, :length])
        row = 0
        for j, layer, x, _ in asking:
            out[j] = self._finish(layer, x, att[:, row : row + x.shape[1]])
            row += x.shape[1]
        return out[0], out[1]

    def _cross_layer(
        self, vlm_layer: nn.Module, expert_layer: nn.Module | None, i: int, prefix: Tensor | None,
        suffix: Tensor | None, mask: Tensor, positions: Tensor, cache: PrefixCache | None,
        new_cache: PrefixCache | None,
    ) -> tuple[Tensor | None, Tensor | None]:
        if prefix is not None:  # training: the VLM layer over the prefix alone, its K/V feed the expert
            lp = prefix.shape[1]
            q, k, v = self._qkv(vlm_layer, prefix)
            k = apply_rope(k, positions[:, :lp])
            if q is None:  # the last layer the expert reads: its K/V only
                prefix = None
            else:
                q = apply_rope(q, positions[:, :lp])
                prefix = self._finish(vlm_layer, prefix, attention(q, k, v, mask[:, :lp, :lp]))
            expert_pos = positions[:, lp:]
        else:
            k, v = cache.keys[i], cache.values[i]
            expert_pos = positions
        if expert_layer is None or suffix is None:
            return prefix, suffix
        if cache is not None and i in cache.expert_kv:  # denoising: projected once per chunk
            ek, ev = cache.expert_kv[i]
        else:
            ek, ev = self.project_prefix_kv(expert_layer, k, v)
        eq = self._qkv_query(expert_layer, suffix)
        expert_pos = expert_pos - expert_pos.min(dim=1, keepdim=True).values  # the actions count from 0
        eq = apply_rope(eq, expert_pos)
        att = attention(eq, ek, ev, mask[:, -suffix.shape[1] :, : ek.shape[1]])
        return prefix, self._finish(expert_layer, suffix, att)

    @staticmethod
    def _qkv_query(layer: nn.Module, x: Tensor) -> Tensor:
        h = layer.input_layernorm(x).to(layer.self_attn.q_proj.weight.dtype)
        return layer.self_attn.q_proj(h).view(*h.shape[:-1], -1, layer.self_attn.head_dim)

    @staticmethod
    def project_prefix_kv(layer: nn.Module, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """The VLM's prefix keys/values (B, Lp, Hkv, D) seen through the expert's k/v projections."""
        attn = layer.self_attn
        ek = attn.k_proj(k.reshape(*k.shape[:2], -1).to(attn.k_proj.weight.dtype))
        ev = attn.v_proj(v.reshape(*v.shape[:2], -1).to(attn.v_proj.weight.dtype))
        return ek.view(*k.shape[:2], -1, attn.head_dim), ev.view(*v.shape[:2], -1, attn.head_dim)

    def precompute_expert_kv(self, cache: PrefixCache) -> PrefixCache:
        """Project the cached prefix K/V for every cross-attention layer once (reused by all denoising steps)."""
        for i in range(len(cache.keys)):
            layer = self._expert_layer(i)
            if layer is not None and not self._is_self_attn(i):
                cache.expert_kv[i] = self.project_prefix_kv(layer, cache.keys[i], cache.values[i])
        return cache


def _save_host_modules(module: SmolVLMWithExpert, state: dict[str, Tensor], prefix: str, _meta: object) -> None:
    """state_dict post-hook: the host-kept modules' weights under their usual keys."""
    for path, held in module.host_modules.items():
        held.state_dict(destination=state, prefix=f"{prefix}{path}.")


def _load_host_modules(
    module: SmolVLMWithExpert, state: dict[str, Tensor], prefix: str, _meta: object, _strict: bool,
    missing: list[str], unexpected: list[str], errors: list[str],
) -> None:
    """load_state_dict pre-hook: the host-kept modules' keys are taken out of `state` and copied into them;
    missing, unexpected and mis-shaped keys are reported as load_state_dict reports any other."""
    for path, held in module.host_modules.items():
        start = f"{prefix}{path}."
        own = held.state_dict(keep_vars=True)
        for key in [k for k in state if k.startswith(start) and k[len(start):] not in own]:
            unexpected.append(key)
            del state[key]  # else the parent module reports it too
        for name, tensor in own.items():
            key = start + name
            if key not in state:
                missing.append(key)
                continue
            value = state.pop(key)
            if value.shape != tensor.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                              f"the shape in current model is {tensor.shape}.")
                continue
            with torch.no_grad():
                tensor.copy_(value)


def vision_embeddings(embeddings: nn.Module, pixels: Tensor) -> Tensor:
    """SmolVLM's vision embeddings (patch conv + position embedding) for images whose patches are all valid:
    the position ids are transformers' fractional-coordinate buckets for a full patch grid, computed with
    device-side ops only (the stock forward indexes with the patch mask, which syncs with the host)."""
    patches = embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
    side = embeddings.num_patches_per_side
    rows, cols = pixels.shape[2] // embeddings.patch_size, pixels.shape[3] // embeddings.patch_size
    device = pixels.device
    boundaries = torch.arange(1 / side, 1.0, 1 / side, device=device)

    def buckets(count: int) -> Tensor:
        step = 1.0 / torch.full((), count, dtype=torch.int64, device=device)  # float32, as transformers' 1 / sum
        coords = torch.clamp(torch.arange(count, device=device, dtype=torch.float32) * step, max=1.0 - 1e-6)
        return torch.bucketize(coords, boundaries, right=True)

    position_ids = (buckets(rows)[:, None] * side + buckets(cols)[None, :]).reshape(1, -1)
    return patches + embeddings.position_embedding(position_ids)
