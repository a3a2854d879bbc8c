"""Diffusion Policy's config: LeRobot's field names, order and defaults — lerobot 0.6's defaults
(horizon 64 / 32 action steps, BatchNorm, one encoder per camera), which changed from 0.4's
(16 / 8, GroupNorm, shared encoder); a config.json from either version sets every field itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from apprentice.policies.config import PolicyConfig, PolicyError


@dataclass
class DiffusionConfig(PolicyConfig):
    type: ClassVar[str] = "diffusion"

    n_obs_steps: int = 2
    horizon: int = 64
    n_action_steps: int = 32
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"}
    )
    # The original implementation never samples the last frames of an episode (less padding, better
    # results): horizon - n_action_steps - n_obs_steps + 1 for its 16/8 horizon; lerobot kept 7 at 64/32.
    drop_n_last_frames: int = 7
    vision_backbone: str = "resnet18"
    resize_shape: tuple[int, int] | None = None
    crop_ratio: float = 1.0
    crop_shape: tuple[int, int] | None = None
    crop_is_random: bool = True
    pretrained_backbone_weights: str | None = None
    use_group_norm: bool = False
    spatial_softmax_num_keypoints: int = 32
    use_separate_rgb_encoder_per_camera: bool = True
    down_dims: tuple[int, ...] = (512, 1024, 2048)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 128
    use_film_scale_modulation: bool = True
    noise_scheduler_type: str = "DDPM"
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    num_inference_steps: int | None = None
    compile_model: bool = False
    compile_mode: str = "reduce-overhead"
    do_mask_loss_for_padding: bool = False
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.95, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-6
    scheduler_name: str = "cosine"
    scheduler_warmup_steps: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vision_backbone != "resnet18":
            raise PolicyError(
                f"diffusion: vision_backbone={self.vision_backbone!r}; only 'resnet18' is implemented"
            )
        if self.prediction_type not in ("epsilon", "sample"):
            raise PolicyError(
                f"diffusion: prediction_type={self.prediction_type!r}; use 'epsilon' or 'sample'"
            )
        if self.noise_scheduler_type not in ("DDPM", "DDIM"):
            raise PolicyError(
                f"diffusion: noise_scheduler_type={self.noise_scheduler_type!r}; use DDPM or DDIM"
            )
        if self.beta_schedule not in ("squaredcos_cap_v2", "linear", "scaled_linear"):
            raise PolicyError(f"diffusion: beta_schedule={self.beta_schedule!r} is not supported")
        if self.scheduler_name not in ("cosine", "constant"):
            raise PolicyError(f"diffusion: scheduler_name={self.scheduler_name!r}; use cosine or constant")
        if not 0 < self.crop_ratio <= 1.0:
            raise PolicyError(f"diffusion: crop_ratio must be in (0, 1], got {self.crop_ratio}")
        if self.resize_shape is not None:
            self.resize_shape = tuple(self.resize_shape)
            self.crop_shape = (
                None
                if self.crop_ratio >= 1.0
                else (
                    int(self.resize_shape[0] * self.crop_ratio),
                    int(self.resize_shape[1] * self.crop_ratio),
                )
            )
        if self.crop_shape is not None:
            self.crop_shape = tuple(self.crop_shape)
        factor = 2 ** len(self.down_dims)
        if self.horizon % factor:
            raise PolicyError(
                f"diffusion: horizon={self.horizon} must be a multiple of 2**len(down_dims)={factor}"
            )
        if self.n_action_steps > self.horizon - self.n_obs_steps + 1:
            raise PolicyError("diffusion: n_action_steps must be <= horizon - n_obs_steps + 1")
        if self.use_group_norm and self.pretrained_backbone_weights:
            raise PolicyError(
                "diffusion: use_group_norm=true would discard pretrained BatchNorm weights; "
                "set use_group_norm=false to use pretrained_backbone_weights"
            )
        if self.input_features and not self.image_features and self.env_state_feature is None:
            raise PolicyError(
                "diffusion: needs at least one camera or observation.environment_state among the inputs"
            )
        shapes = {f.shape for f in self.image_features.values()}
        if len(shapes) > 1:
            raise PolicyError(f"diffusion: all cameras must have the same shape, got {sorted(shapes)}")
        if self.crop_shape is not None and self.resize_shape is None:
            for key, ft in self.image_features.items():
                if self.crop_shape[0] > ft.shape[1] or self.crop_shape[1] > ft.shape[2]:
                    raise PolicyError(
                        f"diffusion: crop_shape {self.crop_shape} does not fit {key} {ft.shape}"
                    )

    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, 1))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, 1 - self.n_obs_steps + self.horizon))
