"""VQ-BeT's config: LeRobot's field names, order and defaults (so config.json is interchangeable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from apprentice.policies.config import PolicyConfig, PolicyError


@dataclass
class VQBeTConfig(PolicyConfig):
    """VQ-BeT (Lee et al. 2024, "Behavior Generation with Latent Actions").

    Training has two phases: for `n_vqvae_training_steps` steps only the residual VQ-VAE learns to
    tokenize action chunks (`action_chunk_size` actions -> 2 codes of `vqvae_n_embed`); then it is
    frozen and the GPT learns to predict, from `n_obs_steps` observations, the codes (primary and
    secondary heads) and a continuous offset of `n_action_pred_token` chunks.
    """

    type: ClassVar[str] = "vqbet"

    n_obs_steps: int = 5
    n_action_pred_token: int = 3
    action_chunk_size: int = 5
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"}
    )
    vision_backbone: str = "resnet18"
    crop_shape: tuple[int, int] | None = (84, 84)
    crop_is_random: bool = True
    # lerobot 0.4.x's defaults (random init, GroupNorm). lerobot 0.6 defaults to torchvision's ImageNet
    # weights with BatchNorm, which it downloads; we never download: point this at a local safetensors
    # file and set use_group_norm=false for that (README, "VQ-BeT").
    pretrained_backbone_weights: str | None = None
    use_group_norm: bool = True
    spatial_softmax_num_keypoints: int = 32
    n_vqvae_training_steps: int = 20000
    vqvae_n_embed: int = 16
    vqvae_embedding_dim: int = 256
    vqvae_enc_hidden_dim: int = 128
    gpt_block_size: int = 500
    gpt_input_dim: int = 512
    gpt_output_dim: int = 512
    gpt_n_layer: int = 8
    gpt_n_head: int = 8
    gpt_hidden_dim: int = 512
    dropout: float = 0.1
    offset_loss_weight: float = 10000.0
    primary_code_loss_weight: float = 5.0
    secondary_code_loss_weight: float = 0.5
    bet_softmax_temperature: float = 0.1
    sequentially_select: bool = False
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.95, 0.999)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-6
    optimizer_vqvae_lr: float = 1e-3
    optimizer_vqvae_weight_decay: float = 1e-4
    scheduler_warmup_steps: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crop_shape is not None:
            self.crop_shape = tuple(self.crop_shape)
        self.optimizer_betas = tuple(self.optimizer_betas)
        positive = (
            "n_obs_steps",
            "n_action_pred_token",
            "action_chunk_size",
            "n_vqvae_training_steps",
            "vqvae_n_embed",
            "vqvae_embedding_dim",
            "vqvae_enc_hidden_dim",
            "gpt_block_size",
            "gpt_input_dim",
            "gpt_output_dim",
            "gpt_n_layer",
            "gpt_n_head",
            "gpt_hidden_dim",
            "spatial_softmax_num_keypoints",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise PolicyError(f"vqbet: {name} must be >= 1 (got {getattr(self, name)})")
        if not self.vision_backbone.startswith("resnet"):
            raise PolicyError(
                f"vqbet: vision_backbone must be one of the ResNet variants, got {self.vision_backbone!r}"
            )
        if self.vision_backbone != "resnet18":
            raise PolicyError(f"vqbet: vision_backbone={self.vision_backbone!r}; only 'resnet18' is implemented")
        if self.gpt_hidden_dim % self.gpt_n_head:
            raise PolicyError(
                f"vqbet: gpt_hidden_dim={self.gpt_hidden_dim} is not divisible by gpt_n_head={self.gpt_n_head}"
            )
        if not self.bet_softmax_temperature > 0:
            raise PolicyError(
                f"vqbet: bet_softmax_temperature must be > 0 (got {self.bet_softmax_temperature})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise PolicyError(f"vqbet: dropout must be in [0, 1) (got {self.dropout})")
        if self.use_group_norm and self.pretrained_backbone_weights:
            raise PolicyError(
                "vqbet: use_group_norm=true would discard pretrained BatchNorm weights; "
                "set use_group_norm=false to use pretrained_backbone_weights"
            )
        if self.input_features:
            self.validate_features()

    def validate_features(self) -> None:
        """LeRobot's checks: exactly one camera (crop must fit it) and observation.state among the inputs."""
        if len(self.image_features) != 1:
            raise PolicyError(
                f"vqbet: needs exactly one camera among the inputs, got {sorted(self.image_features)}"
            )
        if self.robot_state_feature is None:
            raise PolicyError(f"vqbet: needs observation.state among the inputs, got {sorted(self.input_features)}")
        if self.crop_shape is not None:
            for key, ft in self.image_features.items():
                if self.crop_shape[0] > ft.shape[1] or self.crop_shape[1] > ft.shape[2]:
                    raise PolicyError(
                        f"vqbet: crop_shape {list(self.crop_shape)} does not fit {key} {list(ft.shape)}; "
                        "pass a smaller --policy.crop_shape (H,W) or --policy.crop_shape=null"
                    )
        tokens = self.n_obs_steps * (len(self.input_features) + 1) + self.n_action_pred_token - 1
        if tokens > self.gpt_block_size:
            raise PolicyError(
                f"vqbet: {tokens} GPT tokens (n_obs_steps x (inputs + 1) + n_action_pred_token - 1) exceed "
                f"gpt_block_size={self.gpt_block_size}"
            )

    # The deploy runtime executes this many actions per predicted chunk (LeRobot's action queue length).
    @property
    def n_action_steps(self) -> int:
        return self.action_chunk_size

    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, 1))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, self.n_action_pred_token + self.action_chunk_size - 1))
