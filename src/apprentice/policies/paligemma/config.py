"""The config fields π0 and π0.5 share: lerobot 0.6.1's PI0Config/PI05Config, same names, order and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from apprentice.policies.config import OBS_IMAGE_PREFIX, OBS_STATE, PolicyConfig, PolicyError, PolicyFeature

DEFAULT_IMAGE_SIZE = 224


@dataclass
class PiConfig(PolicyConfig):
    """π0-family config; see README "π0 and π0.5" for what each group of fields does."""

    uses_task: ClassVar[bool] = True  # training batches carry their `task` strings (the prompt)

    paligemma_variant: str = "gemma_2b"
    action_expert_variant: str = "gemma_300m"
    dtype: str = "float32"  # parameters: "float32" or "bfloat16" (SigLIP and norms stay float32)

    n_obs_steps: int = 1
    chunk_size: int = 50  # actions predicted per inference (openpi's action_horizon)
    n_action_steps: int = 50  # of which are executed before predicting again

    # Shorter state/action vectors are zero-padded to these.
    max_state_dim: int = 32
    max_action_dim: int = 32

    # Flow matching (openpi's PI0Pytorch).
    num_inference_steps: int = 10
    time_sampling_beta_alpha: float = 1.5
    time_sampling_beta_beta: float = 1.0
    time_sampling_scale: float = 0.999
    time_sampling_offset: float = 0.001
    min_period: float = 4e-3
    max_period: float = 4.0

    # Relative actions (lerobot's RelativeActionsProcessorStep): not implemented here; must stay False.
    use_relative_actions: bool = False
    relative_exclude_joints: list[str] = field(default_factory=lambda: ["gripper"])
    action_feature_names: list[str] | None = None

    # Real-Time Chunking settings as lerobot stores them (RTC itself is `predict_action_chunk(rtc=...)`).
    rtc_config: dict[str, Any] | None = None

    image_resolution: tuple[int, int] = (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    empty_cameras: int = 0  # extra all-padding cameras (for checkpoints trained with more cameras)

    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    )

    gradient_checkpointing: bool = False
    compile_model: bool = False  # lerobot's torch.compile switch; here use the trainer's --compile
    compile_mode: str = "max-autotune"
    device: str | None = None

    freeze_vision_encoder: bool = False  # SigLIP frozen
    train_expert_only: bool = False  # the whole VLM frozen: only the expert and the projections train

    # AdamW + cosine decay with warmup (openpi's), grad clip 1.0.
    optimizer_lr: float = 2.5e-5
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 0.01
    optimizer_grad_clip_norm: float = 1.0
    scheduler_warmup_steps: int = 1_000
    scheduler_decay_steps: int = 30_000  # both shrink proportionally when --steps is smaller
    scheduler_decay_lr: float = 2.5e-6

    tokenizer_max_length: int = 48

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_action_steps > self.chunk_size:
            raise PolicyError(
                f"n_action_steps ({self.n_action_steps}) cannot be greater than chunk_size ({self.chunk_size})"
            )
        if self.dtype not in ("bfloat16", "float32"):
            raise PolicyError(f"dtype={self.dtype!r}: use 'bfloat16' or 'float32'")
        self.image_resolution = tuple(int(v) for v in self.image_resolution)  # type: ignore[assignment]
        if len(self.image_resolution) != 2 or self.image_resolution[0] != self.image_resolution[1]:
            raise PolicyError(f"image_resolution={list(self.image_resolution)}: PaliGemma needs a square size")
        if self.use_relative_actions:
            raise PolicyError(
                f"{self.type}: use_relative_actions=true is not supported; train on absolute actions"
            )
        for i in range(self.empty_cameras):
            key = f"{OBS_IMAGE_PREFIX}empty_camera_{i}"
            self.input_features.setdefault(key, PolicyFeature("VISUAL", (3, *self.image_resolution)))
        state = self.input_features.get(OBS_STATE)
        if state is not None and state.shape[0] > self.max_state_dim:
            raise PolicyError(f"observation.state has {state.shape[0]} dims > max_state_dim={self.max_state_dim}")
        action = self.output_features.get("action")
        if action is not None and action.shape[0] > self.max_action_dim:
            raise PolicyError(f"action has {action.shape[0]} dims > max_action_dim={self.max_action_dim}")

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))
