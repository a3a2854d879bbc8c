"""SAC's networks, with LeRobot's module names (so state-dict keys match): the observation encoder
(4-conv image encoder + learned spatial embeddings per camera, linear state/env encoders), MLP, the
critic heads and their ensemble, the discrete (gripper) critic and the tanh-Gaussian actor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.config import OBS_ENV_STATE, OBS_IMAGE_PREFIX, OBS_STATE, PolicyError
from apprentice.policies.sac.configuration_sac import SACConfig


class MLP(nn.Module):
    """Linear → (LayerNorm → SiLU) per hidden dim; the last layer's norm/activation only with activate_final."""

    def __init__(
        self, input_dim: int, hidden_dims: list[int], activate_final: bool = False, final_activation: str | None = None
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, out_dim in enumerate(hidden_dims):
            layers.append(nn.Linear(input_dim, out_dim))
            last = i == len(hidden_dims) - 1
            if not last or activate_final:
                layers.append(nn.LayerNorm(out_dim))
                layers.append(getattr(nn, final_activation)() if last and final_activation else nn.SiLU())
            input_dim = out_dim
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


MIN_IMAGE_SIZE = 39  # the four stride-2 convs (7, 5, 3, 3) need at least this many pixels per side


class DefaultImageEncoder(nn.Module):
    def __init__(self, in_channels: int, hidden: int, image_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if image_shape is not None and min(image_shape[-2:]) < MIN_IMAGE_SIZE:
            raise PolicyError(
                f"image input {tuple(image_shape)} is too small for the 4-conv encoder (>= {MIN_IMAGE_SIZE} px a side);"
                " record or resize frames larger (--policy.input_shapes)"
            )
        convs = []
        for i, k in enumerate((7, 5, 3, 3)):
            convs += [nn.Conv2d(in_channels if i == 0 else hidden, hidden, kernel_size=k, stride=2), nn.ReLU()]
        self.image_enc_layers = nn.Sequential(*convs)

    def forward(self, x: Tensor) -> Tensor:
        return self.image_enc_layers(x)


class SpatialLearnedEmbeddings(nn.Module):
    """A learned (C, H, W, F) kernel pooling a feature map to C*F numbers (keeps where things are)."""

    def __init__(self, height: int, width: int, channel: int, num_features: int = 8) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channel, height, width, num_features))
        nn.init.kaiming_normal_(self.kernel, mode="fan_in", nonlinearity="linear")

    def forward(self, features: Tensor) -> Tensor:
        out = torch.einsum("bchw,chwf->bcf", features, self.kernel)  # (B, C, F)
        return out.reshape(out.shape[0], -1)


class SACObservationEncoder(nn.Module):
    """Normalized observations → one latent vector (cameras, then env state, then robot state)."""

    def __init__(self, config: SACConfig) -> None:
        super().__init__()
        self.image_keys = [k for k in config.input_features if k.startswith(OBS_IMAGE_PREFIX)]
        self.has_images = bool(self.image_keys)
        self.has_env = OBS_ENV_STATE in config.input_features
        self.has_state = OBS_STATE in config.input_features
        latent = config.latent_dim
        if self.has_images:
            shape = config.input_features[self.image_keys[0]].shape
            self.image_encoder = DefaultImageEncoder(shape[0], config.image_encoder_hidden_dim, shape)
            if config.freeze_vision_encoder:
                for p in self.image_encoder.parameters():
                    p.requires_grad = False
            with torch.no_grad():
                _, c, h, w = self.image_encoder(torch.zeros(1, *shape)).shape
            self.spatial_embeddings = nn.ModuleDict()
            self.post_encoders = nn.ModuleDict()
            for key in self.image_keys:
                name = key.replace(".", "_")
                self.spatial_embeddings[name] = SpatialLearnedEmbeddings(h, w, c, config.image_embedding_pooling_dim)
                self.post_encoders[name] = nn.Sequential(
                    nn.Dropout(0.1),
                    nn.Linear(c * config.image_embedding_pooling_dim, latent),
                    nn.LayerNorm(latent),
                    nn.Tanh(),
                )
        if self.has_env:
            dim = config.input_features[OBS_ENV_STATE].shape[0]
            self.env_encoder = nn.Sequential(nn.Linear(dim, latent), nn.LayerNorm(latent), nn.Tanh())
        if self.has_state:
            dim = config.input_features[OBS_STATE].shape[0]
            self.state_encoder = nn.Sequential(nn.Linear(dim, latent), nn.LayerNorm(latent), nn.Tanh())
        self.output_dim = latent * (len(self.image_keys) + int(self.has_env) + int(self.has_state))

    def image_features(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The conv trunk's maps per camera, all cameras in one batch (the costly part; cacheable when frozen)."""
        out = self.image_encoder(torch.cat([obs[k] for k in self.image_keys]))
        return dict(zip(self.image_keys, out.chunk(len(self.image_keys)), strict=True))

    def forward(self, obs: dict[str, Tensor], cache: dict[str, Tensor] | None = None, detach: bool = False) -> Tensor:
        parts = []
        if self.has_images:
            cache = cache if cache is not None else self.image_features(obs)
            for key in self.image_keys:
                name = key.replace(".", "_")
                x = self.post_encoders[name](self.spatial_embeddings[name](cache[key]))
                parts.append(x.detach() if detach else x)
        if self.has_env:
            parts.append(self.env_encoder(obs[OBS_ENV_STATE]))
        if self.has_state:
            parts.append(self.state_encoder(obs[OBS_STATE]))
        return torch.cat(parts, dim=-1)


def _init_final(layer: nn.Linear, init_final: float | None) -> None:
    if init_final is not None:
        nn.init.uniform_(layer.weight, -init_final, init_final)
        nn.init.uniform_(layer.bias, -init_final, init_final)
    else:
        nn.init.orthogonal_(layer.weight, gain=1.0)


class CriticHead(nn.Module):
    def __init__(self, input_dim: int, hidden_dims: list[int], activate_final: bool = False,
                 final_activation: str | None = None, init_final: float | None = None) -> None:
        super().__init__()
        self.net = MLP(input_dim, hidden_dims, activate_final, final_activation)
        self.output_layer = nn.Linear(hidden_dims[-1], 1)
        _init_final(self.output_layer, init_final)

    def forward(self, x: Tensor) -> Tensor:
        return self.output_layer(self.net(x))


class CriticEnsemble(nn.Module):
    """Q(s, a) for every head: (num_critics, B)."""

    def __init__(self, encoder: SACObservationEncoder, ensemble: list[CriticHead]) -> None:
        super().__init__()
        self.encoder = encoder
        self.critics = nn.ModuleList(ensemble)

    def forward(self, obs: dict[str, Tensor], actions: Tensor, cache: dict[str, Tensor] | None = None) -> Tensor:
        x = torch.cat([self.encoder(obs, cache=cache), actions], dim=-1)
        return torch.stack([c(x).squeeze(-1) for c in self.critics])


class DiscreteCritic(nn.Module):
    """Q(s, ·) over the discrete gripper actions: (B, num_discrete_actions)."""

    def __init__(self, encoder: SACObservationEncoder, input_dim: int, hidden_dims: list[int], output_dim: int = 3,
                 activate_final: bool = False, final_activation: str | None = None,
                 init_final: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.net = MLP(input_dim, hidden_dims, activate_final, final_activation)
        self.output_layer = nn.Linear(hidden_dims[-1], output_dim)
        _init_final(self.output_layer, init_final)

    def forward(self, obs: dict[str, Tensor], cache: dict[str, Tensor] | None = None) -> Tensor:
        return self.output_layer(self.net(self.encoder(obs, cache=cache)))


class Actor(nn.Module):
    """The tanh-squashed diagonal Gaussian policy (LeRobot's `Policy` module, held as `actor`)."""

    def __init__(self, encoder: SACObservationEncoder, network: MLP, action_dim: int, std_min: float = 1e-5,
                 std_max: float = 10.0, init_final: float | None = None, use_tanh_squash: bool = True,
                 encoder_is_shared: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.network = network
        self.std_min, self.std_max = std_min, std_max
        self.use_tanh_squash = use_tanh_squash
        # A shared encoder learns from the critics only (its features detached here), as DrQ/HIL-SERL do.
        self.encoder_is_shared = encoder_is_shared
        out = next(m.out_features for m in reversed(network.net) if isinstance(m, nn.Linear))
        self.mean_layer = nn.Linear(out, action_dim)
        self.std_layer = nn.Linear(out, action_dim)
        _init_final(self.mean_layer, init_final)
        _init_final(self.std_layer, init_final)

    def forward(
        self, obs: dict[str, Tensor], cache: dict[str, Tensor] | None = None, deterministic: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(action, log_prob, mean): a reparameterized sample (or the mode) in [-1, 1] and its log-density."""
        h = self.network(self.encoder(obs, cache=cache, detach=self.encoder_is_shared))
        mean = self.mean_layer(h)
        std = self.std_layer(h).exp().clamp(self.std_min, self.std_max)
        u = mean if deterministic else mean + std * torch.randn_like(mean)
        log_prob = (-0.5 * ((u - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        if not self.use_tanh_squash:
            return u, log_prob, mean
        # log|d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|.
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob, mean
