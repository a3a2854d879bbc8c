"""SAC's config: LeRobot's field names and defaults.

LeRobot 0.4 had one `SACConfig` (`"type": "sac"`); 0.6 split it into the policy side
(`GaussianActorConfig`, `"type": "gaussian_actor"`: encoder, actor, discrete gripper critic) and the
algorithm side (`SACAlgorithmConfig`: critics, targets, temperature, `utd_ratio`, learning rates). Both
field sets are here in one dataclass, so a config.json of either version loads; we write `"type": "sac"`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from apprentice.policies.config import OBS_IMAGE_PREFIX, OBS_STATE, PolicyConfig, PolicyError


@dataclass
class ConcurrencyConfig:
    actor: str = "threads"
    learner: str = "threads"
    multiprocessing_context: str | None = "spawn"


@dataclass
class ActorLearnerConfig:
    learner_host: str = "127.0.0.1"
    learner_port: int = 50051
    policy_parameters_push_frequency: int = 4
    queue_get_timeout: float = 2


@dataclass
class CriticNetworkConfig:
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    activate_final: bool = True
    final_activation: str | None = None


@dataclass
class ActorNetworkConfig:
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    activate_final: bool = True


@dataclass
class GaussianHeadConfig:
    """LeRobot's `PolicyConfig` (the tanh-Gaussian head); renamed here as `PolicyConfig` is our base class."""

    use_tanh_squash: bool = True
    std_min: float = 1e-5
    std_max: float = 10.0
    init_final: float = 0.05


_NESTED = {
    "actor_learner_config": ActorLearnerConfig,
    "concurrency": ConcurrencyConfig,
    "critic_network_kwargs": CriticNetworkConfig,
    "actor_network_kwargs": ActorNetworkConfig,
    "policy_kwargs": GaussianHeadConfig,
    "discrete_critic_network_kwargs": CriticNetworkConfig,
}


@dataclass
class SACConfig(PolicyConfig):
    type: ClassVar[str] = "sac"

    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ENV": "MIN_MAX", "ACTION": "MIN_MAX"}
    )
    # Stats LeRobot uses when no dataset gives them (ImageNet for cameras); a dataset's stats win.
    dataset_stats: dict[str, dict[str, list[float]]] | None = field(
        default_factory=lambda: {
            "observation.image": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "observation.state": {"min": [0.0, 0.0], "max": [1.0, 1.0]},
            "action": {"min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0]},
        }
    )

    # Architecture.
    device: str | None = "cpu"
    storage_device: str = "cpu"
    # A Hub CNN (lerobot: "lerobot/resnet10"); None = the 4-conv encoder trained from scratch.
    vision_encoder_name: str | None = None
    freeze_vision_encoder: bool = True
    image_encoder_hidden_dim: int = 32
    shared_encoder: bool = True  # one encoder for actor and critics; the actor's gradient does not reach it
    num_discrete_actions: int | None = None  # gripper as a discrete DQN head (gym-hil: 3 = open/stay/close)
    image_embedding_pooling_dim: int = 8
    state_encoder_hidden_dim: int = 256
    latent_dim: int = 256

    # Online training.
    online_steps: int = 1000000
    online_buffer_capacity: int = 100000
    offline_buffer_capacity: int = 100000
    async_prefetch: bool = False
    online_step_before_learning: int = 100
    policy_update_freq: int = 1

    # SAC (0.6: SACAlgorithmConfig).
    discount: float = 0.99
    temperature_init: float = 1.0
    num_critics: int = 2
    num_subsample_critics: int | None = None
    critic_lr: float = 3e-4
    actor_lr: float = 3e-4
    temperature_lr: float = 3e-4
    critic_target_update_weight: float = 0.005  # Polyak weight of the online critics in the targets
    utd_ratio: int = 1  # critic updates per env step (the last one also updates actor and temperature)
    target_entropy: float | None = None  # None: -|A|/2, the gripper head counting as one dimension
    use_backup_entropy: bool = True
    grad_clip_norm: float = 40.0

    critic_network_kwargs: CriticNetworkConfig = field(default_factory=CriticNetworkConfig)
    actor_network_kwargs: ActorNetworkConfig = field(default_factory=ActorNetworkConfig)
    policy_kwargs: GaussianHeadConfig = field(default_factory=GaussianHeadConfig)
    discrete_critic_network_kwargs: CriticNetworkConfig = field(default_factory=CriticNetworkConfig)
    actor_learner_config: ActorLearnerConfig = field(default_factory=ActorLearnerConfig)
    concurrency: ConcurrencyConfig = field(default_factory=ConcurrencyConfig)

    # LeRobot compiles the critics by default in 0.4 and not in 0.6 ("does not converge"); we never compile.
    use_torch_compile: bool = False

    def __post_init__(self) -> None:
        for name, cls in _NESTED.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                known = {f.name for f in dataclasses.fields(cls)}
                setattr(self, name, cls(**{k: v for k, v in value.items() if k in known}))
        super().__post_init__()
        if self.input_features:
            has_image = any(k.startswith(OBS_IMAGE_PREFIX) for k in self.input_features)
            if not has_image and OBS_STATE not in self.input_features:
                raise PolicyError(
                    "sac: needs observation.state or an observation.images.* camera among input_features"
                )
        if self.utd_ratio < 1:
            raise PolicyError(f"sac: utd_ratio must be >= 1 (got {self.utd_ratio})")
        if self.num_critics < 1:
            raise PolicyError(f"sac: num_critics must be >= 1 (got {self.num_critics})")
        if self.num_subsample_critics is not None and not 1 <= self.num_subsample_critics <= self.num_critics:
            raise PolicyError(
                f"sac: num_subsample_critics={self.num_subsample_critics} must be in "
                f"1..num_critics ({self.num_critics})"
            )
        if not 0.0 < self.critic_target_update_weight <= 1.0:
            raise PolicyError(
                f"sac: critic_target_update_weight must be in (0, 1] (got {self.critic_target_update_weight})"
            )
        if self.temperature_init <= 0:
            raise PolicyError(f"sac: temperature_init must be > 0 (got {self.temperature_init})")
        if self.num_discrete_actions is not None and self.num_discrete_actions < 2:
            raise PolicyError(f"sac: num_discrete_actions must be >= 2 or None (got {self.num_discrete_actions})")
        if self.vision_encoder_name is not None:
            raise PolicyError(
                f"sac: vision_encoder_name={self.vision_encoder_name!r} needs a Hub download (transformers "
                "AutoModel with remote code), which Apprentice does not run; leave it unset for the default encoder"
            )

    @property
    def continuous_action_dim(self) -> int:
        """Action dims the Gaussian actor outputs: the `action` feature's (as lerobot, the discrete gripper
        is not in it; the executed action has one more column, the gripper index)."""
        return self.action_feature.shape[0]

    @property
    def action_delta_indices(self) -> list[int] | None:
        return [0]  # one action at a time (the generic sampler needs a list; lerobot says None)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in _NESTED:
            out[name] = dataclasses.asdict(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> PolicyConfig:
        data = dict(data)
        if data.get("type") == "gaussian_actor":
            data.pop("type")  # lerobot 0.6's policy half of SAC: the same fields
        return super().from_dict(data, source)
