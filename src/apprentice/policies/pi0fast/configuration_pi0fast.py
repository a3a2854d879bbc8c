"""π0-FAST's config: lerobot 0.6.1's `PI0FastConfig` field names, order and defaults.

lerobot registers the type as "pi0_fast"; our folder (and `--policy.type`) is `pi0fast`, and both names
are accepted. config.json is written with lerobot's name so lerobot loads our checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from apprentice.policies.config import PolicyConfig, PolicyError

LEROBOT_TYPE = "pi0_fast"
# Not lerobot fields: written to config.json only when not these defaults.
APPRENTICE_FIELDS = {"vlm_config": None, "freeze_vision_encoder": False, "decode_bos_in_prefix": True}
# (width, depth, mlp_dim, num_heads, num_kv_heads, head_dim) of openpi's Gemma variants.
GEMMA_VARIANTS = {
    "gemma_300m": (1024, 18, 4096, 8, 1, 256),
    "gemma_2b": (2048, 18, 16_384, 8, 1, 256),
}


@dataclass
class PI0FastConfig(PolicyConfig):
    type: ClassVar[str] = "pi0fast"
    uses_task: ClassVar[bool] = True  # training batches carry their `task` strings (the prompt)

    paligemma_variant: str = "gemma_2b"
    action_expert_variant: str = "gemma_300m"  # unused by π0-FAST (no expert); kept for config.json parity
    dtype: str = "float32"  # "bfloat16" | "float32": the weights' dtype (vision path stays float32)
    chunk_size: int = 50
    n_action_steps: int = 50
    max_state_dim: int = 32
    max_action_dim: int = 32
    max_action_tokens: int = 256
    use_relative_actions: bool = False
    relative_exclude_joints: list[str] = field(default_factory=lambda: ["gripper"])
    action_feature_names: list[str] | None = None
    rtc_config: dict[str, Any] | None = None
    image_resolution: tuple[int, int] = (224, 224)
    empty_cameras: int = 0
    tokenizer_max_length: int = 200
    # A Hub id or a local dir (tokenizer.json + tokenizer_config.json); loaded by transformers, no remote code.
    text_tokenizer_name: str = "google/paligemma-3b-pt-224"
    # A Hub id or a local dir (processor_config.json + tokenizer.json); read by fast_tokenizer.py.
    action_tokenizer_name: str = "lerobot/fast-action-tokenizer"
    temperature: float = 0.0
    max_decoding_steps: int = 256
    fast_skip_tokens: int = 128
    validate_action_token_prefix: bool = True
    use_kv_cache: bool = True
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    )
    gradient_checkpointing: bool = False
    compile_model: bool = False
    compile_mode: str = "max-autotune"
    optimizer_lr: float = 2.5e-5
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 0.01
    optimizer_grad_clip_norm: float = 1.0
    scheduler_warmup_steps: int = 1_000
    scheduler_decay_steps: int = 30_000
    scheduler_decay_lr: float = 2.5e-6
    # Apprentice: a transformers PaliGemmaConfig dict (e.g. a tiny one for tests) instead of the variant's
    # full-size one; None = PaliGemma-3B as lerobot builds it. Not a lerobot field (written only when set).
    vlm_config: dict[str, Any] | None = None
    freeze_vision_encoder: bool = False
    # Apprentice: decoding's <bos> joins the bidirectional prefix (lerobot 0.6.1, the default: the same actions
    # as its checkpoints), or false: it enters as the first action token does in training (model.generate).
    decode_bos_in_prefix: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_action_steps > self.chunk_size:
            raise PolicyError(
                f"pi0fast: n_action_steps={self.n_action_steps} exceeds chunk_size={self.chunk_size}"
            )
        if self.paligemma_variant not in GEMMA_VARIANTS:
            raise PolicyError(
                f"pi0fast: paligemma_variant={self.paligemma_variant!r}; use one of {sorted(GEMMA_VARIANTS)}"
            )
        if self.dtype not in ("bfloat16", "float32"):
            raise PolicyError(f"pi0fast: dtype={self.dtype!r}; use bfloat16 or float32")
        if self.temperature < 0:
            raise PolicyError(f"pi0fast: temperature={self.temperature} must be >= 0")
        if self.max_decoding_steps < 1 or self.max_action_tokens < 4:
            raise PolicyError("pi0fast: max_decoding_steps must be >= 1 and max_action_tokens >= 4")
        if self.use_relative_actions:
            raise PolicyError("pi0fast: use_relative_actions=true is not implemented here; set it false")
        self.image_resolution = tuple(self.image_resolution)

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["type"] = LEROBOT_TYPE
        # lerobot's config parser rejects unknown fields: ours are written only when they are not the default.
        for name, default in APPRENTICE_FIELDS.items():
            if out.get(name) == default:
                out.pop(name)
        return out
