"""TD-MPC's Task-Oriented Latent Dynamics model (TOLD): observation encoder, latent dynamics, reward,
policy prior π, Q ensemble and V — plain MLPs over a `latent_dim` latent.

Module and attribute names (`_encoder.image_enc_layers.9`, `_Qs.3.0`, …) are LeRobot's, so its
model.safetensors loads as it is; the layer indices follow from where the activations sit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.config import OBS_ENV_STATE, OBS_STATE
from apprentice.policies.tdmpc.configuration_tdmpc import TDMPCConfig


def _mlp_head(d_in: int, hidden: int, d_out: int, activation: type[nn.Module]) -> nn.Sequential:
    """Linear-LN-act, Linear-LN-act, Linear: the dynamics/reward/π trunk (Mish in TD-MPC)."""
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.LayerNorm(hidden),
        activation(),
        nn.Linear(hidden, hidden),
        nn.LayerNorm(hidden),
        activation(),
        nn.Linear(hidden, d_out),
    )


def _value_head(d_in: int, hidden: int) -> nn.Sequential:
    """Q and V: Linear-LN-tanh, Linear-ELU, Linear -> one value."""
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.LayerNorm(hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.ELU(),
        nn.Linear(hidden, 1),
    )


def _state_encoder(d_in: int, hidden: int, latent: int) -> nn.Sequential:
    # The sigmoid keeps every modality's latent in (0, 1), so their mean is a latent of the same kind.
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ELU(), nn.Linear(hidden, latent), nn.LayerNorm(latent), nn.Sigmoid()
    )


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class TDMPCObservationEncoder(nn.Module):
    """Each modality (one camera, observation.environment_state, observation.state) to a latent; their mean."""

    def __init__(self, config: TDMPCConfig) -> None:
        super().__init__()
        self.image_key = next(iter(config.image_features), None)
        self.has_env_state = config.env_state_feature is not None
        self.has_state = config.robot_state_feature is not None
        if self.image_key is not None:
            c, h, w = config.image_features[self.image_key].shape
            dim = config.image_encoder_hidden_dim
            layers: list[nn.Module] = []
            for i, (kernel, stride) in enumerate([(7, 2), (5, 2), (3, 2), (3, 2)]):
                layers += [nn.Conv2d(c if i == 0 else dim, dim, kernel, stride=stride), nn.ReLU()]
                h, w = _conv_out(h, kernel, stride), _conv_out(w, kernel, stride)
            # (B, dim, h, w) -> (B, latent_dim)
            layers += [
                nn.Flatten(),
                nn.Linear(dim * h * w, config.latent_dim),
                nn.LayerNorm(config.latent_dim),
                nn.Sigmoid(),
            ]
            self.image_enc_layers = nn.Sequential(*layers)
        if self.has_state:
            self.state_enc_layers = _state_encoder(
                config.robot_state_feature.shape[0], config.state_encoder_hidden_dim, config.latent_dim
            )
        if self.has_env_state:
            self.env_state_enc_layers = _state_encoder(
                config.env_state_feature.shape[0], config.state_encoder_hidden_dim, config.latent_dim
            )

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        """obs values have any leading dims (*, feature...); returns (*, latent_dim)."""
        latents = []
        if self.image_key is not None:
            image = obs[self.image_key]
            lead = image.shape[:-3]
            out = self.image_enc_layers(image.reshape(-1, *image.shape[-3:]))
            latents.append(out.reshape(*lead, out.shape[-1]))
        if self.has_env_state:
            latents.append(self.env_state_enc_layers(obs[OBS_ENV_STATE]))
        if self.has_state:
            latents.append(self.state_enc_layers(obs[OBS_STATE]))
        return torch.stack(latents).mean(0)


class TDMPCTOLD(nn.Module):
    """The world model and value functions TD-MPC plans with (all in latent space)."""

    def __init__(self, config: TDMPCConfig) -> None:
        super().__init__()
        latent, hidden, action_dim = config.latent_dim, config.mlp_dim, config.action_feature.shape[0]
        self._encoder = TDMPCObservationEncoder(config)
        self._dynamics = nn.Sequential(
            *_mlp_head(latent + action_dim, hidden, latent, nn.Mish), nn.LayerNorm(latent), nn.Sigmoid()
        )
        self._reward = _mlp_head(latent + action_dim, hidden, 1, nn.Mish)
        self._pi = _mlp_head(latent, hidden, action_dim, nn.Mish)
        self._Qs = nn.ModuleList(_value_head(latent + action_dim, hidden) for _ in range(config.q_ensemble_size))
        self._V = _value_head(latent, hidden)
        self._init_weights()

    def _init_weights(self) -> None:
        # Orthogonal weights, zero biases; reward and Q outputs start at exactly 0 (TD-MPC's init).
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                gain = nn.init.calculate_gain("relu") if isinstance(m, nn.Conv2d) else 1.0
                nn.init.orthogonal_(m.weight, gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for head in [self._reward, *self._Qs]:
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        return self._encoder(obs)

    def latent_dynamics_and_reward(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """(*, latent), (*, action) -> next latent (*, latent) and reward (*,)."""
        x = torch.cat([z, a], dim=-1)
        return self._dynamics(x), self._reward(x).squeeze(-1)

    def latent_dynamics(self, z: Tensor, a: Tensor) -> Tensor:
        return self._dynamics(torch.cat([z, a], dim=-1))

    def pi(self, z: Tensor, std: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """π's action in [-1, 1], plus N(0, std²) noise when std > 0 (not clamped: the planner clamps)."""
        action = torch.tanh(self._pi(z))
        if std > 0:
            noise = torch.randn(action.shape, generator=generator, device=action.device, dtype=action.dtype)
            action = action + noise * std
        return action

    def V(self, z: Tensor) -> Tensor:
        return self._V(z).squeeze(-1)

    def Qs(self, z: Tensor, a: Tensor) -> Tensor:
        """Every ensemble member's Q(z, a): (ensemble, *)."""
        x = torch.cat([z, a], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self._Qs])

    def Q_min_of_two(self, z: Tensor, a: Tensor) -> Tensor:
        """FOWM App. C: the minimum of two ensemble members drawn at random (numpy's RNG, as LeRobot)."""
        members = list(self._Qs)
        if len(members) > 2:
            members = [members[i] for i in np.random.choice(len(members), size=2)]
        x = torch.cat([z, a], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in members]).min(0).values


def random_shifts_aug(images: Tensor, max_random_shift_ratio: float) -> Tensor:
    """DrQ-v2's augmentation: pad by ratio·size (replicating the border), then crop at a random integer
    offset per image. (B, C, H, W) -> same shape."""
    b, _, h, w = images.shape
    pad = round(max_random_shift_ratio * h)
    if pad == 0:
        return images
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    shift = torch.randint(0, 2 * pad + 1, (b, 2), device=images.device)
    rows = (torch.arange(h, device=images.device)[None, :] + shift[:, :1])[:, None, :, None]  # (B, 1, H, 1)
    cols = (torch.arange(w, device=images.device)[None, :] + shift[:, 1:])[:, None, None, :]  # (B, 1, 1, W)
    c = images.shape[1]
    out = padded.gather(2, rows.expand(b, c, h, padded.shape[3]))
    return out.gather(3, cols.expand(b, c, h, w))


@torch.no_grad()
def update_ema(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target ← momentum·target + (1 − momentum)·online, parameter by parameter (names must match)."""
    for (name_t, p_t), (name_o, p_o) in zip(target.named_parameters(), online.named_parameters(), strict=True):
        if name_t != name_o:
            raise RuntimeError(f"EMA target parameter {name_t} does not match {name_o}")
        p_t.lerp_(p_o.to(p_t.dtype), 1.0 - momentum)
