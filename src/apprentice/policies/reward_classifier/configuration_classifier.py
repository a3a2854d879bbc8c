"""The reward classifier's config: lerobot's `RewardClassifierConfig` names and defaults
(`--policy.type=reward_classifier`; lerobot 0.6 keeps it under `rewards/classifier`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from apprentice.policies.config import OBS_IMAGE_PREFIX, PolicyConfig, PolicyError, PolicyFeature

REWARD = "next.reward"


@dataclass
class RewardClassifierConfig(PolicyConfig):
    type: ClassVar[str] = "reward_classifier"

    name: str = "reward_classifier"
    num_classes: int = 2  # 2: one logit, success probability by sigmoid
    hidden_dim: int = 256
    latent_dim: int = 256
    image_embedding_pooling_dim: int = 8
    dropout_rate: float = 0.1
    # lerobot loads this Hub CNN with remote code; Apprentice builds its own conv trunk (`model_type="cnn"`)
    # trained with the head, since no Hub weights can be fetched or remote code run here.
    model_name: str = "lerobot/resnet10"
    device: str | None = "cpu"
    model_type: str = "cnn"
    num_cameras: int = 2
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    grad_clip_norm: float = 1.0
    normalization_mapping: dict[str, str] = field(default_factory=lambda: {"VISUAL": "MEAN_STD"})
    # Apprentice: channels of the conv trunk (lerobot's resnet10 ends at 512).
    encoder_hidden_dim: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.output_features:
            self.output_features = {REWARD: PolicyFeature("REWARD", (1,))}
        if self.model_type != "cnn":
            raise PolicyError(f"reward_classifier: model_type={self.model_type!r}; only 'cnn' is built here")
        if self.num_classes < 2:
            raise PolicyError(f"reward_classifier: num_classes must be >= 2 (got {self.num_classes})")
        cams = [k for k in self.input_features if k.startswith(OBS_IMAGE_PREFIX)]
        if self.input_features and not cams:
            raise PolicyError("reward_classifier: needs an observation.images.* camera among input_features")
        if cams and len(cams) != self.num_cameras:
            raise PolicyError(
                f"reward_classifier: num_cameras={self.num_cameras} but the inputs have {len(cams)} cameras "
                f"{cams}; pass --policy.num_cameras={len(cams)}"
            )

    @property
    def optimizer_lr(self) -> float:
        return self.learning_rate

    @property
    def action_delta_indices(self) -> list[int]:
        return [0]

    @property
    def reward_delta_indices(self) -> list[int]:
        return [0]  # the label: next.reward of the frame (1 on success frames)
