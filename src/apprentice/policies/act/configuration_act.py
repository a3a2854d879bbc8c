"""ACT's config: LeRobot's field names, order and defaults (so config.json is interchangeable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from apprentice.policies.config import PolicyConfig, PolicyError


@dataclass
class ACTConfig(PolicyConfig):
    type: ClassVar[str] = "act"

    n_obs_steps: int = 1
    chunk_size: int = 100
    n_action_steps: int = 100
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    )
    vision_backbone: str = "resnet18"
    # LeRobot defaults to torchvision's ImageNet weights, which it downloads; we never download, so the
    # default is random init and a user points this at a local safetensors file (README, "Training").
    pretrained_backbone_weights: str | None = None
    replace_final_stride_with_dilation: bool = False
    pre_norm: bool = False
    dim_model: int = 512
    n_heads: int = 8
    dim_feedforward: int = 3200
    feedforward_activation: str = "relu"
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 4
    temporal_ensemble_coeff: float | None = None
    dropout: float = 0.1
    kl_weight: float = 10.0
    optimizer_lr: float = 1e-5
    optimizer_weight_decay: float = 1e-4
    optimizer_lr_backbone: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vision_backbone != "resnet18":
            raise PolicyError(
                f"act: vision_backbone={self.vision_backbone!r}; only 'resnet18' is implemented"
            )
        if self.replace_final_stride_with_dilation:
            raise PolicyError(
                "act: replace_final_stride_with_dilation needs a bottleneck ResNet; resnet18 has none"
            )
        if self.temporal_ensemble_coeff is not None and self.n_action_steps > 1:
            raise PolicyError("act: temporal ensembling queries the model every step; set n_action_steps=1")
        if self.n_action_steps > self.chunk_size:
            raise PolicyError(
                f"act: n_action_steps={self.n_action_steps} exceeds chunk_size={self.chunk_size}"
            )
        if self.n_obs_steps != 1:
            raise PolicyError(f"act: n_obs_steps must be 1 (got {self.n_obs_steps})")
        if self.feedforward_activation not in ("relu", "gelu", "glu"):
            raise PolicyError(
                f"act: feedforward_activation={self.feedforward_activation!r}; use relu, gelu or glu"
            )
        if self.dim_model % self.n_heads:
            raise PolicyError(f"act: dim_model={self.dim_model} is not divisible by n_heads={self.n_heads}")
        if self.input_features and not self.image_features and self.env_state_feature is None:
            raise PolicyError(
                "act: needs at least one camera or observation.environment_state among the inputs"
            )

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))
