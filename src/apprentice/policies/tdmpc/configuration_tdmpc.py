"""TD-MPC's config: LeRobot's `TDMPCConfig` field names, order and defaults (TD-MPC1 with the FOWM
changes: a V function with expectile regression, advantage-weighted policy regression, uncertainty-
regularized planning). Defaults fit xarm_lift_medium: one 84x84 camera plus the robot state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from apprentice.policies.config import PolicyConfig, PolicyError

REWARD = "next.reward"
DONE = "next.done"


@dataclass
class TDMPCConfig(PolicyConfig):
    type: ClassVar[str] = "tdmpc"

    # Input / output structure.
    n_obs_steps: int = 1
    # The planned first action is repeated this many times (fewer plans per second of control).
    n_action_repeats: int = 2
    horizon: int = 5
    # Alternative to repeats: execute this many steps of the plan (needs n_action_repeats=1, use_mpc).
    n_action_steps: int = 1
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "IDENTITY", "ENV": "IDENTITY", "ACTION": "MIN_MAX"}
    )

    # Networks.
    image_encoder_hidden_dim: int = 32
    state_encoder_hidden_dim: int = 256
    latent_dim: int = 50
    q_ensemble_size: int = 5
    mlp_dim: int = 512
    # Reinforcement learning.
    discount: float = 0.9

    # Inference: MPPI with CEM over `horizon`-step action sequences, scored in latent space.
    use_mpc: bool = True  # false: act with the policy prior π alone
    cem_iterations: int = 6
    max_std: float = 2.0
    min_std: float = 0.05  # also the noise added to π's actions while planning
    n_gaussian_samples: int = 512
    n_pi_samples: int = 51  # trajectories rolled out with π each plan (0 = gaussian only)
    uncertainty_regularizer_coeff: float = 1.0  # λ of FOWM eqn 4: value minus λ·std over the Q ensemble
    n_elites: int = 50
    elite_weighting_temperature: float = 0.5
    gaussian_mean_momentum: float = 0.1

    # Training.
    max_random_shift_ratio: float = 0.0476  # image shift augmentation, fraction of the image size
    reward_coeff: float = 0.5
    expectile_weight: float = 0.9  # τ of V's expectile regression (closer to 1 = more optimistic V)
    value_coeff: float = 0.1
    consistency_coeff: float = 20.0
    advantage_scaling: float = 3.0
    pi_coeff: float = 0.5
    temporal_decay_coeff: float = 0.5  # loss weight of step t of the horizon: coeff**t
    target_model_momentum: float = 0.995  # EMA of the target networks after every optimizer step

    optimizer_lr: float = 3e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_gaussian_samples <= 0:
            raise PolicyError(f"tdmpc: n_gaussian_samples must be > 0 (got {self.n_gaussian_samples})")
        if self.n_pi_samples < 0:
            raise PolicyError(f"tdmpc: n_pi_samples must be >= 0 (got {self.n_pi_samples})")
        if not 0 < self.n_elites <= self.n_gaussian_samples + self.n_pi_samples:
            raise PolicyError(
                f"tdmpc: n_elites={self.n_elites} must be in 1..n_gaussian_samples + n_pi_samples "
                f"({self.n_gaussian_samples + self.n_pi_samples})"
            )
        if self.horizon < 1 or self.cem_iterations < 1:
            raise PolicyError(
                f"tdmpc: horizon ({self.horizon}) and cem_iterations ({self.cem_iterations}) must be >= 1"
            )
        if self.q_ensemble_size < 1:
            raise PolicyError(f"tdmpc: q_ensemble_size must be >= 1 (got {self.q_ensemble_size})")
        if self.normalization_mapping.get("ACTION") != "MIN_MAX":
            # The policy's tanh and CEM's clamp work in [-1, 1]; MIN_MAX is what maps that to the robot.
            raise PolicyError(
                "tdmpc: normalization_mapping['ACTION'] must be MIN_MAX (TD-MPC plans actions in [-1, 1])"
            )
        if self.n_obs_steps != 1:
            raise PolicyError(f"tdmpc: n_obs_steps must be 1 (got {self.n_obs_steps})")
        if self.n_action_repeats < 1 or self.n_action_steps < 1:
            raise PolicyError("tdmpc: n_action_repeats and n_action_steps must be >= 1")
        if self.n_action_steps > 1:
            if self.n_action_repeats != 1:
                raise PolicyError("tdmpc: n_action_steps > 1 needs n_action_repeats=1")
            if not self.use_mpc:
                raise PolicyError("tdmpc: n_action_steps > 1 needs use_mpc=true (π gives one action)")
            if self.n_action_steps > self.horizon:
                raise PolicyError(f"tdmpc: n_action_steps={self.n_action_steps} exceeds horizon={self.horizon}")
        if not 0.0 <= self.expectile_weight <= 1.0:
            raise PolicyError(f"tdmpc: expectile_weight must be in [0, 1] (got {self.expectile_weight})")
        if len(self.image_features) > 1:
            raise PolicyError(
                f"tdmpc: handles at most one camera; got {sorted(self.image_features)}. Train on a "
                "dataset with one camera, or list only one in --policy.input_features"
            )
        for key, ft in self.image_features.items():
            if self.max_random_shift_ratio > 0 and ft.shape[-2] != ft.shape[-1]:
                raise PolicyError(
                    f"tdmpc: random-shift augmentation needs square images; {key} is {ft.shape}. "
                    "Record square frames or set --policy.max_random_shift_ratio=0"
                )
        if self.input_features and self.robot_state_feature is None:
            raise PolicyError("tdmpc: needs observation.state among the inputs (its padding mask marks episode ends)")

    # Windows of a training sample: horizon+1 observations, horizon actions and rewards.
    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(self.horizon + 1))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.horizon))

    @property
    def reward_delta_indices(self) -> list[int]:
        return list(range(self.horizon))
