"""SmolVLA's config: LeRobot 0.6.1's `SmolVLAConfig` field names, order and defaults, so a config.json
written by lerobot-train (e.g. `lerobot/smolvla_base`) loads here and ours loads there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from apprentice.policies.config import OBS_IMAGE_PREFIX, PolicyConfig, PolicyError, PolicyFeature

ATTENTION_MODES = ("cross_attn", "self_attn")
PAD_LANGUAGE = ("longest", "max_length")


@dataclass
class SmolVLAConfig(PolicyConfig):
    """SmolVLA (Shukor et al. 2025): a SmolVLM2 backbone cut to its first `num_vlm_layers` text layers and
    a smaller action expert trained by flow matching."""

    type: ClassVar[str] = "smolvla"
    # The policy reads the batch's `task` (tokenised); the trainer feeds the dataset's per-frame task.
    uses_language: ClassVar[bool] = True

    n_obs_steps: int = 1
    chunk_size: int = 50
    n_action_steps: int = 50  # actions executed per chunk (<= chunk_size)
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    )
    # State and action vectors are zero-padded to these sizes (the model's fixed input/output widths).
    max_state_dim: int = 32
    max_action_dim: int = 32
    # (width, height) every camera is resized to without distortion, padded on the left/top.
    resize_imgs_with_padding: tuple[int, int] = (512, 512)
    # Extra all-black cameras (smolvla_aloha_sim adds the two wrist cameras it was trained with).
    empty_cameras: int = 0
    adapt_to_pi_aloha: bool = False
    use_delta_joint_actions_aloha: bool = False
    tokenizer_max_length: int = 48
    num_steps: int = 10  # Euler denoising steps at inference
    use_cache: bool = True  # the prefix (images, language, state) K/V is computed once per chunk
    freeze_vision_encoder: bool = True
    train_expert_only: bool = True  # the whole VLM frozen; only the expert and projections train
    train_state_proj: bool = True
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-10
    optimizer_grad_clip_norm: float = 10
    scheduler_warmup_steps: int = 1_000
    scheduler_decay_steps: int = 30_000
    scheduler_decay_lr: float = 2.5e-6
    # A Hub id or a local dir with the VLM's config.json and tokenizer files (weights only with
    # load_vlm_weights). A checkpoint's own vlm/ folder wins when present.
    vlm_model_name: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    load_vlm_weights: bool = False  # start from the VLM's pretrained weights (training from scratch)
    add_image_special_tokens: bool = False
    attention_mode: str = "cross_attn"
    prefix_length: int = -1  # > 0: pad the prefix to this many tokens
    pad_language_to: str = "longest"
    num_expert_layers: int = -1  # <= 0: as many expert layers as VLM layers
    num_vlm_layers: int = 16
    self_attn_every_n_layers: int = 2  # every n-th layer the expert self-attends jointly with the prefix
    expert_width_multiplier: float = 0.75  # expert hidden size / VLM hidden size
    min_period: float = 4e-3  # range of the sine-cosine timestep embedding
    max_period: float = 4.0
    # LeRobot's RTCConfig as a dict; inference takes RTC settings per call (predict_action_chunk(rtc=...)).
    rtc_config: dict[str, Any] | None = None
    compile_model: bool = False
    compile_mode: str = "max-autotune"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.resize_imgs_with_padding = tuple(int(v) for v in self.resize_imgs_with_padding)
        self.optimizer_betas = tuple(float(b) for b in self.optimizer_betas)
        checks = [
            (self.n_action_steps <= self.chunk_size,
             f"n_action_steps={self.n_action_steps} > chunk_size={self.chunk_size}; the chunk bounds it"),
            (self.n_action_steps >= 1 and self.chunk_size >= 1, "chunk_size and n_action_steps must be >= 1"),
            (not self.use_delta_joint_actions_aloha,
             "use_delta_joint_actions_aloha is not supported (nor by LeRobot); set it to false"),
            (self.attention_mode in ATTENTION_MODES,
             f"attention_mode={self.attention_mode!r}; use one of {ATTENTION_MODES}"),
            (self.pad_language_to in PAD_LANGUAGE,
             f"pad_language_to={self.pad_language_to!r}; use one of {PAD_LANGUAGE}"),
            (self.num_steps >= 1, f"num_steps={self.num_steps}; need at least one denoising step"),
            (self.tokenizer_max_length >= 1, f"tokenizer_max_length={self.tokenizer_max_length}; need >= 1"),
            (len(self.resize_imgs_with_padding) == 2, "resize_imgs_with_padding is (width, height)"),
        ]
        for ok, message in checks:
            if not ok:
                raise PolicyError(f"smolvla config: {message}")

    def validate_features(self) -> None:
        """Add the configured empty cameras (LeRobot adds them as 480x640 visual features)."""
        for i in range(self.empty_cameras):
            key = f"{OBS_IMAGE_PREFIX}empty_camera_{i}"
            self.input_features.setdefault(key, PolicyFeature("VISUAL", (3, 480, 640)))
        if not self.image_features:
            raise PolicyError("smolvla needs at least one camera (an observation.images.* feature)")

    @property
    def observation_delta_indices(self) -> list[int]:
        return [0]

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))
