"""Sizes of the π models' two transformers, and the stock transformers configs built from them.

`gemma_2b` (PaliGemma's language model) and `gemma_300m` (the action expert) are openpi's/lerobot's; the
vision tower is PaliGemma-3B's SigLIP So400m/14. Names are the values of lerobot's `paligemma_variant` /
`action_expert_variant`. `register_variant` adds another size (tests build tiny ones); config.json then
names it, and only this process knows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apprentice.policies.config import PolicyError

PALIGEMMA_VOCAB = 257152  # PaliGemma's tokenizer + location/segmentation tokens; also the image token id


@dataclass(frozen=True)
class VisionVariant:
    """SigLIP vision tower sizes (defaults: PaliGemma-3B-224's So400m/14)."""

    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_hidden_layers: int = 27
    num_attention_heads: int = 16
    patch_size: int = 14
    projection_dim: int = 2048  # = the language model's width


@dataclass(frozen=True)
class GemmaVariant:
    """A Gemma decoder's sizes; `vision`/`vocab_size` matter when it is the VLM's language model."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int = PALIGEMMA_VOCAB
    vision: VisionVariant = field(default_factory=VisionVariant)


VARIANTS: dict[str, GemmaVariant] = {
    "gemma_300m": GemmaVariant(width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1, head_dim=256),
    "gemma_2b": GemmaVariant(width=2048, depth=18, mlp_dim=16_384, num_heads=8, num_kv_heads=1, head_dim=256),
}


def register_variant(name: str, variant: GemmaVariant) -> None:
    VARIANTS[name] = variant


def get_variant(name: str, field_name: str) -> GemmaVariant:
    if name not in VARIANTS:
        raise PolicyError(f"{field_name}={name!r} is not a known Gemma size; use one of {sorted(VARIANTS)}")
    return VARIANTS[name]


def paligemma_config(vlm: GemmaVariant, image_size: int) -> Any:
    """transformers' PaliGemmaConfig for the VLM (lerobot's values: gelu-tanh Gemma, gelu_fast projector)."""
    from transformers import PaliGemmaConfig, SiglipVisionConfig

    vis = vlm.vision
    vision = SiglipVisionConfig(
        hidden_size=vis.hidden_size,
        intermediate_size=vis.intermediate_size,
        num_hidden_layers=vis.num_hidden_layers,
        num_attention_heads=vis.num_attention_heads,
        patch_size=vis.patch_size,
        image_size=image_size,
        projection_dim=vis.projection_dim,
        projector_hidden_act="gelu_fast",
        vision_use_head=False,
    )
    cfg = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=gemma_config(vlm).to_dict(),
        image_token_index=vlm.vocab_size,
        projection_dim=vis.projection_dim,
    )
    cfg.text_config.vocab_size = vlm.vocab_size
    return cfg


def gemma_config(v: GemmaVariant) -> Any:
    from transformers import GemmaConfig

    return GemmaConfig(
        hidden_size=v.width,
        intermediate_size=v.mlp_dim,
        num_hidden_layers=v.depth,
        num_attention_heads=v.num_heads,
        num_key_value_heads=v.num_kv_heads,
        head_dim=v.head_dim,
        vocab_size=v.vocab_size,
        hidden_activation="gelu_pytorch_tanh",
    )
