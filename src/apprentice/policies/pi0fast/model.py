"""π0-FAST's network: a stock transformers PaliGemmaForConditionalGeneration (SigLIP + Gemma) reading

    [image tokens | prompt tokens | FAST action tokens]

Images and prompt attend to each other bidirectionally (the prefix); action tokens attend to the whole
prefix and causally to earlier action tokens. Training is next-token cross-entropy on action tokens only.

Module names give lerobot 0.6.1's state-dict keys (`model.paligemma_with_expert.paligemma.…`). As in
lerobot on transformers 5: token embeddings come from Gemma's scaled embedding (x sqrt(hidden)), image
features are the projector output (no 1/sqrt(hidden)), and the Gemma layers run one by one under our own
4D mask (here rather than through GemmaModel.forward, which builds a causal mask), which also gives
per-layer gradient checkpointing and FSDP units.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.checkpointing import Checkpointable
from apprentice.policies.pi0fast.configuration_pi0fast import GEMMA_VARIANTS, PI0FastConfig

NEG_INF = -2.3819763e38  # lerobot's / openpi's masked-logit value
KEEP_FLOAT32 = ("vision_tower", "multi_modal_projector", "input_layernorm", "post_attention_layernorm", "model.norm")


def paligemma_config(config: PI0FastConfig) -> Any:
    """The transformers PaliGemmaConfig: config.vlm_config if given (tiny test models), else PaliGemma-3B
    as lerobot builds it for `paligemma_variant`."""
    from transformers import PaliGemmaConfig

    if config.vlm_config is not None:
        return PaliGemmaConfig(**config.vlm_config)
    width, depth, mlp, heads, kv_heads, head_dim = GEMMA_VARIANTS[config.paligemma_variant]
    # PaliGemmaConfig()'s defaults (SigLIP So400m/14 at 224, no pooling head) with lerobot's overrides.
    hf = PaliGemmaConfig()
    hf.image_token_index = 257152
    text = hf.text_config
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = width, mlp, depth
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = heads, kv_heads, head_dim
    text.hidden_activation, text.vocab_size = "gelu_pytorch_tanh", 257152
    vision = hf.vision_config
    vision.intermediate_size, vision.projection_dim, vision.projector_hidden_act = 4304, 2048, "gelu_fast"
    hf.projection_dim = 2048
    return hf


class VisionTower(nn.Module):
    """transformers < 5.6 nests SiglipVisionModel's modules under `vision_model` (the keys lerobot 0.6.1, which
    pins transformers 5.4-5.5, and its published checkpoints use); newer releases dropped that level. This
    holder restores it, so the state-dict keys are the same on every transformers 5.x."""

    def __init__(self, vision_model: nn.Module) -> None:
        super().__init__()
        self.vision_model = vision_model

    def forward(self, pixel_values: Tensor) -> Any:
        return self.vision_model(pixel_values=pixel_values)


class PI0FastPaliGemma(nn.Module):
    """Holds `paligemma` (lerobot's `paligemma_with_expert`; π0-FAST has no action expert)."""

    def __init__(self, config: PI0FastConfig) -> None:
        super().__init__()
        from transformers import PaliGemmaForConditionalGeneration

        hf = paligemma_config(config)
        hf.text_config._attn_implementation = "sdpa"
        hf.vision_config._attn_implementation = "sdpa"
        self.paligemma = PaliGemmaForConditionalGeneration(hf)
        if not hasattr(self.paligemma.model.vision_tower, "vision_model"):
            self.paligemma.model.vision_tower = VisionTower(self.paligemma.model.vision_tower)
        if config.dtype == "bfloat16":
            self.paligemma.to(torch.bfloat16)
            # As lerobot: the vision path and the norms stay float32 (one dtype per parameter for good).
            for name, param in self.paligemma.named_parameters():
                if any(s in name for s in KEEP_FLOAT32):
                    param.data = param.data.float()

    @property
    def language_model(self) -> nn.Module:
        return self.paligemma.model.language_model

    def embed_image(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, N, D): SigLIP patches through the projector (float32 path)."""
        vision = self.paligemma.model.vision_tower
        dtype = next(vision.parameters()).dtype
        hidden = vision(pixel_values=images.to(dtype)).last_hidden_state
        return self.paligemma.model.multi_modal_projector(hidden)

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self.language_model.embed_tokens(ids)


class PI0FastModel(Checkpointable):
    """lerobot's `model` (PI0FastPytorch): prefix embedding, the masked Gemma pass, loss and decoding."""

    def __init__(self, config: PI0FastConfig) -> None:
        super().__init__()
        self.config = config
        self.paligemma_with_expert = PI0FastPaliGemma(config)

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.paligemma_with_expert.language_model.layers[0].self_attn.q_proj.weight.dtype

    # ------------------------------------------------------------------------------- embedding
    def embed_prefix(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, masks: Tensor
    ) -> tuple[Tensor, Tensor]:
        """[images | prompt] embeddings (B, P, D) and their pad mask (B, P)."""
        pg = self.paligemma_with_expert
        embs, pads = [], []
        for img, keep in zip(images, img_masks):
            emb = self.run(pg.embed_image, img)
            embs.append(emb)
            pads.append(keep[:, None].expand(emb.shape[0], emb.shape[1]))
        embs.append(pg.embed_tokens(tokens))
        pads.append(masks)
        return torch.cat([e.to(self.compute_dtype) for e in embs], dim=1), torch.cat(pads, dim=1)

    # ------------------------------------------------------------------------------- the pass
    def _layers(
        self, hidden: Tensor, mask4d: Tensor, position_ids: Tensor, cache: Any = None
    ) -> Tensor:
        lm = self.paligemma_with_expert.language_model
        position_embeddings = lm.rotary_emb(hidden, position_ids)
        # transformers renamed the layers' `past_key_values` to `cache` (5.2x); pass whichever this one takes.
        cache_kw = "cache" if "cache" in inspect.signature(lm.layers[0].forward).parameters else "past_key_values"
        for layer in lm.layers:
            out = self.run(
                layer,
                hidden,
                attention_mask=mask4d,
                position_ids=position_ids,
                use_cache=cache is not None,
                position_embeddings=position_embeddings,
                **{cache_kw: cache},
            )
            hidden = out[0] if isinstance(out, tuple) else out
        return lm.norm(hidden)

    @staticmethod
    def _mask4d(allowed: Tensor, dtype: torch.dtype) -> Tensor:
        """bool (B, Q, K) -> additive (B, 1, Q, K)."""
        return torch.where(allowed[:, None], 0.0, NEG_INF).to(dtype)

    # ------------------------------------------------------------------------------- training
    def forward(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, masks: Tensor,
        action_tokens: Tensor, action_masks: Tensor,
    ) -> Tensor:
        """Mean cross-entropy of each action token given the prefix and the action tokens before it."""
        loss, valid = self.token_losses(images, img_masks, tokens, masks, action_tokens, action_masks)[:2]
        return (loss * valid).sum() / valid.sum().clamp(min=1)

    def token_losses(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, masks: Tensor,
        action_tokens: Tensor, action_masks: Tensor, with_argmax: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per target position (B, a-1): cross-entropy, validity, and whether the argmax is the target (the
        teacher-forced view that `forward` averages, kept per position so early tokens can be told apart; the
        argmax only `with_argmax`, training skips that pass over the logits)."""
        prefix, prefix_pad = self.embed_prefix(images, img_masks, tokens, masks)
        act = self.paligemma_with_expert.embed_tokens(action_tokens).to(prefix.dtype)
        embs = torch.cat([prefix, act], dim=1)
        pad = torch.cat([prefix_pad, action_masks], dim=1)
        p, a = prefix.shape[1], act.shape[1]
        allowed = torch.ones(p + a, p + a, dtype=torch.bool, device=embs.device)
        allowed[:p, p:] = False  # the prefix never sees the actions
        allowed[p:, p:] = torch.tril(torch.ones(a, a, dtype=torch.bool, device=embs.device))
        allowed = allowed[None] & pad[:, None, :] & pad[:, :, None]
        position_ids = torch.cumsum(pad, dim=1) - 1
        hidden = self._layers(embs, self._mask4d(allowed, embs.dtype), position_ids)
        # Logits only where an action token is predicted: (B, a-1, V), not the whole sequence's.
        logits = self.paligemma_with_expert.paligemma.lm_head(hidden[:, p:-1])
        targets, valid = action_tokens[:, 1:], action_masks[:, 1:]
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
        return loss.view_as(targets), valid, (logits.argmax(-1) == targets) if with_argmax else None

    # ------------------------------------------------------------------------------- decoding
    @torch.no_grad()
    def generate(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, masks: Tensor, *,
        bos_id: int, end_id: int, max_decoding_steps: int, temperature: float = 0.0, use_kv_cache: bool = True,
        generator: torch.Generator | None = None, bos_in_prefix: bool = True,
    ) -> Tensor:
        """Autoregressive action tokens after `[images | prompt | <bos>]`: (B, max_decoding_steps), 0-filled
        after every sequence has ended (greedy decoding stops then; sampling always runs to the end so the
        RNG advances the same way every call).

        `bos_in_prefix` (lerobot 0.6.1): the <bos> joins the bidirectional prefix, so every prefix token also
        attends to it, which training never shows the model (there the prefix never sees the action tokens, <bos>
        the first of them). False: the <bos> enters as the first action token does in training — it sees the
        prefix, the prefix does not see it — so decoding conditions on exactly what training did."""
        b, device = tokens.shape[0], tokens.device
        if bos_in_prefix:
            tokens = torch.cat([tokens, torch.full((b, 1), bos_id, dtype=torch.long, device=device)], dim=1)
            masks = torch.cat([masks, torch.ones((b, 1), dtype=torch.bool, device=device)], dim=1)
        embs, pad = self.embed_prefix(images, img_masks, tokens, masks)
        lm_head = self.paligemma_with_expert.paligemma.lm_head
        out = torch.zeros((b, max_decoding_steps), dtype=torch.long, device=device)
        finished = torch.zeros(b, dtype=torch.bool, device=device)
        cache = None
        if use_kv_cache:
            from transformers import DynamicCache

            cache = DynamicCache()
        step_in = embs
        allowed = pad[:, None, :] & pad[:, :, None]
        position_ids = torch.cumsum(pad, dim=1) - 1

        def extend(ids: Tensor) -> None:
            """Append one token per row: it sees every valid earlier position, no earlier one sees it."""
            nonlocal step_in, allowed, pad, position_ids
            new = self.paligemma_with_expert.embed_tokens(ids[:, None]).to(embs.dtype)
            pad = torch.cat([pad, torch.ones((b, 1), dtype=torch.bool, device=device)], dim=1)
            if cache is not None:  # only the new token goes through
                step_in, allowed = new, pad[:, None, :]
                position_ids = pad.sum(dim=1, keepdim=True) - 1
            else:  # the whole sequence again (reference path; same attention pattern)
                step_in = torch.cat([step_in, new], dim=1)
                n = step_in.shape[1]
                grown = torch.zeros((b, n, n), dtype=torch.bool, device=device)
                grown[:, :-1, :-1] = allowed
                grown[:, -1, :] = pad
                allowed = grown
                position_ids = torch.cumsum(pad, dim=1) - 1

        if not bos_in_prefix:
            if cache is not None:  # the prefix alone fills the cache (the reference path reruns it all anyway)
                self._layers(step_in, self._mask4d(allowed, embs.dtype), position_ids, cache)
            extend(torch.full((b,), bos_id, dtype=torch.long, device=device))
        for t in range(max_decoding_steps):
            hidden = self._layers(step_in, self._mask4d(allowed, embs.dtype), position_ids, cache)
            logits = lm_head(hidden[:, -1]).float()
            if temperature > 0:
                nxt = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)[:, 0]
            else:
                nxt = logits.argmax(dim=-1)
            out[:, t] = nxt
            finished |= nxt == end_id
            if t == max_decoding_steps - 1 or (temperature == 0 and bool(finished.all())):
                break
            extend(nxt)
        return out
