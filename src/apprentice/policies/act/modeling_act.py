"""ACT in plain torch. Module and parameter names match LeRobot's `modeling_act.py`, so a LeRobot
model.safetensors loads key-for-key; the math (post-norm DETR transformer, CVAE, sinusoidal
embeddings) follows the paper and LeRobot's implementation.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.act.configuration_act import ACTConfig
from apprentice.policies.base import Policy
from apprentice.policies.checkpointing import Checkpointable
from apprentice.policies.config import ACTION, OBS_ENV_STATE, OBS_STATE
from apprentice.policies.normalize import Stats
from apprentice.policies.resnet import ResNet18, load_backbone_weights


class ACTPolicy(Policy):
    config_class = ACTConfig

    def __init__(self, config: ACTConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        self.config: ACTConfig = config
        self.model = ACT(config)
        self.temporal_ensembler = (
            TemporalEnsembler(config.temporal_ensemble_coeff, config.chunk_size)
            if config.temporal_ensemble_coeff is not None
            else None
        )
        self.reset()

    def reset(self) -> None:
        if self.temporal_ensembler is not None:
            self.temporal_ensembler.reset()
        self._action_queue: deque[Tensor] = deque(maxlen=self.config.n_action_steps)

    def init_pretrained_backbone(self) -> None:
        if self.config.pretrained_backbone_weights and self.config.image_features:
            load_backbone_weights(self.model.backbone, self.config.pretrained_backbone_weights)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith("model.backbone") and p.requires_grad]

    def optim_groups(self) -> list[dict[str, Any]]:
        # Same two groups, same order as LeRobot: everything else, then the backbone at its own lr.
        rest = [
            p for n, p in self.named_parameters() if not n.startswith("model.backbone") and p.requires_grad
        ]
        return [
            {"params": rest},
            {"params": self.backbone_parameters(), "lr": self.config.optimizer_lr_backbone},
        ]

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        groups = self.optim_groups()
        if lr is not None and lr != self.config.optimizer_lr:
            # An explicit --policy.lr scales the backbone lr by the same factor.
            groups[1]["lr"] = self.config.optimizer_lr_backbone * lr / self.config.optimizer_lr
        return torch.optim.AdamW(
            groups,
            lr=lr or self.config.optimizer_lr,
            weight_decay=self.config.optimizer_weight_decay,
            fused=fused or None,
        )

    def _prepare(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = self.normalizer.normalize_batch(batch)
        if self.config.image_features:
            batch["observation.images"] = [batch[k] for k in self.config.image_features]
        return batch

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict[str, Any]) -> Tensor:
        self._check_obs(obs)
        was_training = self.training
        self.eval()
        actions = self.model(self._prepare(obs))[0]
        self.train(was_training)
        return self._unnormalize_action(actions)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> Tensor:
        if self.temporal_ensembler is not None:
            return self.temporal_ensembler.update(self.predict_action_chunk(obs))
        if not self._action_queue:
            chunk = self.predict_action_chunk(obs)[:, : self.config.n_action_steps]
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        batch = self._prepare(batch)
        actions_hat, (mu, log_sigma_x2) = self.model(batch)
        valid = ~batch["action_is_pad"].unsqueeze(-1)
        l1 = (F.l1_loss(batch[ACTION], actions_hat, reduction="none") * valid).mean()
        info = {"l1_loss": l1.detach()}
        loss = l1
        if self.config.use_vae:
            kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
            info["kld_loss"] = kld.detach()
            loss = l1 + kld * self.config.kl_weight
        return loss, info


class TemporalEnsembler:
    """Exponentially weighted average of every chunk's prediction for the current step (ACT §4)."""

    def __init__(self, coeff: float, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.weights = torch.exp(-coeff * torch.arange(chunk_size))
        self.weights_cumsum = torch.cumsum(self.weights, dim=0)
        self.reset()

    def reset(self) -> None:
        self.actions: Tensor | None = None
        self.count: Tensor | None = None

    def update(self, actions: Tensor) -> Tensor:
        w, wsum = self.weights.to(actions.device), self.weights_cumsum.to(actions.device)
        if self.actions is None or self.count is None:
            self.actions = actions.clone()
            self.count = torch.ones((self.chunk_size, 1), dtype=torch.long, device=actions.device)
        else:
            # Re-weight the running average for the steps both old and new chunks cover.
            self.actions = self.actions * wsum[self.count - 1]
            self.actions = self.actions + actions[:, :-1] * w[self.count]
            self.actions = self.actions / wsum[self.count]
            self.count = torch.clamp(self.count + 1, max=self.chunk_size)
            self.actions = torch.cat([self.actions, actions[:, -1:]], dim=1)
            self.count = torch.cat([self.count, torch.ones_like(self.count[-1:])])
        action, self.actions, self.count = self.actions[:, 0], self.actions[:, 1:], self.count[1:]
        return action


class ACT(nn.Module):
    """The network: optional CVAE encoder -> latent; transformer encoder over [latent, state, env, image
    tokens]; transformer decoder with `chunk_size` learned queries -> action chunk."""

    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim_model
        state, env = config.robot_state_feature, config.env_state_feature
        action_dim = config.action_feature.shape[0]
        if config.use_vae:
            self.vae_encoder = ACTEncoder(config, config.n_vae_encoder_layers)
            self.vae_encoder_cls_embed = nn.Embedding(1, d)
            if state is not None:
                self.vae_encoder_robot_state_input_proj = nn.Linear(state.shape[0], d)
            self.vae_encoder_action_input_proj = nn.Linear(action_dim, d)
            self.vae_encoder_latent_output_proj = nn.Linear(d, config.latent_dim * 2)
            n_tokens = 1 + config.chunk_size + (1 if state is not None else 0)
            self.register_buffer("vae_encoder_pos_enc", sinusoidal_table(n_tokens, d).unsqueeze(0))
        if config.image_features:
            self.backbone = ResNet18(norm="frozen")
        self.encoder = ACTEncoder(config, config.n_encoder_layers)
        self.decoder = ACTDecoder(config)
        if state is not None:
            self.encoder_robot_state_input_proj = nn.Linear(state.shape[0], d)
        if env is not None:
            self.encoder_env_state_input_proj = nn.Linear(env.shape[0], d)
        self.encoder_latent_input_proj = nn.Linear(config.latent_dim, d)
        if config.image_features:
            self.encoder_img_feat_input_proj = nn.Conv2d(ResNet18.feature_channels, d, kernel_size=1)
        n_1d = 1 + (state is not None) + (env is not None)
        self.encoder_1d_feature_pos_embed = nn.Embedding(n_1d, d)
        if config.image_features:
            self.encoder_cam_feat_pos_embed = SinusoidalPositionEmbedding2d(d // 2)
        self.decoder_pos_embed = nn.Embedding(config.chunk_size, d)
        self.action_head = nn.Linear(d, action_dim)
        for p in [*self.encoder.parameters(), *self.decoder.parameters()]:
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, tuple[Tensor | None, Tensor | None]]:
        cfg = self.config
        images: list[Tensor] = batch.get("observation.images", [])
        ref = images[0] if images else batch[OBS_ENV_STATE]
        bsz, device = ref.shape[0], ref.device
        has_state = cfg.robot_state_feature is not None

        mu = log_sigma_x2 = None
        if cfg.use_vae and self.training and ACTION in batch:
            cls = self.vae_encoder_cls_embed.weight.expand(bsz, 1, -1)
            tokens = [cls]
            if has_state:
                tokens.append(self.vae_encoder_robot_state_input_proj(batch[OBS_STATE]).unsqueeze(1))
            tokens.append(self.vae_encoder_action_input_proj(batch[ACTION]))
            vae_in = torch.cat(tokens, dim=1).transpose(0, 1)
            pos = self.vae_encoder_pos_enc.detach().transpose(0, 1)
            not_action = torch.zeros(bsz, 1 + has_state, dtype=torch.bool, device=device)
            pad_mask = torch.cat([not_action, batch["action_is_pad"]], dim=1)
            cls_out = self.vae_encoder(vae_in, pos_embed=pos, key_padding_mask=pad_mask)[0]
            params = self.vae_encoder_latent_output_proj(cls_out)
            mu, log_sigma_x2 = params[:, : cfg.latent_dim], params[:, cfg.latent_dim :]
            latent = mu + log_sigma_x2.div(2).exp() * torch.randn_like(mu)
        else:
            latent = torch.zeros(bsz, cfg.latent_dim, dtype=torch.float32, device=device)

        tokens = [self.encoder_latent_input_proj(latent)]
        pos_1d = self.encoder_1d_feature_pos_embed.weight.unsqueeze(1)  # (n_1d, 1, D)
        if has_state:
            tokens.append(self.encoder_robot_state_input_proj(batch[OBS_STATE]))
        if cfg.env_state_feature is not None:
            tokens.append(self.encoder_env_state_input_proj(batch[OBS_ENV_STATE]))
        enc_in = torch.stack(tokens, dim=0)
        enc_pos = pos_1d
        if images:
            # All cameras share the backbone (frozen norm: no batch statistics), so one call over the
            # concatenated batch equals LeRobot's per-camera loop and is faster.
            feats = self.backbone(torch.cat(images, dim=0))
            cam_pos = self.encoder_cam_feat_pos_embed(feats).to(feats.dtype)  # (1, D, h, w)
            feats = self.encoder_img_feat_input_proj(feats)  # (n_cam*B, D, h, w)
            feats = feats.flatten(2).permute(2, 0, 1)  # (h*w, n_cam*B, D)
            feats = torch.cat(feats.split(bsz, dim=1), dim=0)  # (n_cam*h*w, B, D), camera-major order
            cam_pos = cam_pos.flatten(2).permute(2, 0, 1).repeat(len(images), 1, 1)
            enc_in = torch.cat([enc_in, feats.to(enc_in.dtype)], dim=0)
            enc_pos = torch.cat([pos_1d.to(cam_pos.dtype), cam_pos], dim=0)
        enc_out = self.encoder(enc_in, pos_embed=enc_pos)
        dec_in = torch.zeros(cfg.chunk_size, bsz, cfg.dim_model, dtype=enc_pos.dtype, device=device)
        dec_out = self.decoder(
            dec_in,
            enc_out,
            encoder_pos_embed=enc_pos,
            decoder_pos_embed=self.decoder_pos_embed.weight.unsqueeze(1),
        )
        return self.action_head(dec_out.transpose(0, 1)), (mu, log_sigma_x2)


def _activation(name: str):
    return {"relu": F.relu, "gelu": F.gelu, "glu": F.glu}[name]


class ACTEncoderLayer(nn.Module):
    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        d = config.dim_model
        self.self_attn = nn.MultiheadAttention(d, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(d, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout1, self.dropout2 = nn.Dropout(config.dropout), nn.Dropout(config.dropout)
        self.activation = _activation(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    def forward(
        self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x if pos_embed is None else x + pos_embed
        x = skip + self.dropout1(
            self.self_attn(q, k, value=x, key_padding_mask=key_padding_mask, need_weights=False)[0]
        )
        if self.pre_norm:
            skip, x = x, self.norm2(x)
        else:
            x = skip = self.norm1(x)
        x = skip + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        return x if self.pre_norm else self.norm2(x)


class ACTEncoder(Checkpointable):
    def __init__(self, config: ACTConfig, n_layers: int) -> None:
        super().__init__()
        self.random = config.dropout > 0
        self.layers = nn.ModuleList([ACTEncoderLayer(config) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(config.dim_model) if config.pre_norm else nn.Identity()

    def forward(
        self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        for layer in self.layers:
            x = self.run(layer, x, pos_embed=pos_embed, key_padding_mask=key_padding_mask, random=self.random)
        return self.norm(x)


class ACTDecoderLayer(nn.Module):
    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        d = config.dim_model
        self.self_attn = nn.MultiheadAttention(d, config.n_heads, dropout=config.dropout)
        self.multihead_attn = nn.MultiheadAttention(d, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(d, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(config.dropout) for _ in range(3))
        self.activation = _activation(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    def forward(
        self, x: Tensor, encoder_out: Tensor, decoder_pos_embed: Tensor, encoder_pos_embed: Tensor
    ) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x + decoder_pos_embed
        x = skip + self.dropout1(self.self_attn(q, k, value=x, need_weights=False)[0])
        if self.pre_norm:
            skip, x = x, self.norm2(x)
        else:
            x = skip = self.norm1(x)
        x = self.multihead_attn(
            query=x + decoder_pos_embed,
            key=encoder_out + encoder_pos_embed,
            value=encoder_out,
            need_weights=False,
        )[0]
        x = skip + self.dropout2(x)
        if self.pre_norm:
            skip, x = x, self.norm3(x)
        else:
            x = skip = self.norm2(x)
        x = skip + self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))
        return x if self.pre_norm else self.norm3(x)


class ACTDecoder(Checkpointable):
    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.random = config.dropout > 0
        self.layers = nn.ModuleList([ACTDecoderLayer(config) for _ in range(config.n_decoder_layers)])
        self.norm = nn.LayerNorm(config.dim_model)

    def forward(
        self, x: Tensor, encoder_out: Tensor, decoder_pos_embed: Tensor, encoder_pos_embed: Tensor
    ) -> Tensor:
        for layer in self.layers:
            x = self.run(
                layer,
                x,
                encoder_out,
                decoder_pos_embed=decoder_pos_embed,
                encoder_pos_embed=encoder_pos_embed,
                random=self.random,
            )
        return self.norm(x)


def sinusoidal_table(n_positions: int, dim: int) -> Tensor:
    """The 1-D sinusoidal table of "Attention is all you need" (even dims sin, odd dims cos)."""
    pos = np.arange(n_positions, dtype=np.float64)[:, None]
    rates = np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)[None, :]
    table = pos / rates
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float()


class SinusoidalPositionEmbedding2d(nn.Module):
    """DETR's 2-D sine embedding of a feature map: half the channels encode y, half x; returns (1, 2*dim, H, W)."""

    def __init__(self, dimension: int) -> None:
        super().__init__()
        self.dimension = dimension
        self._cache: dict[tuple, Tensor] = {}

    def forward(self, x: Tensor) -> Tensor:
        # Depends only on the feature map's size: computed once per (h, w, device), not every step.
        key = (*x.shape[-2:], x.device)
        if key not in self._cache:
            self._cache[key] = self._table(x)
        return self._cache[key]

    def _table(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        ones = torch.ones(1, h, w, dtype=torch.float32, device=x.device)
        eps, two_pi = 1e-6, 2 * math.pi
        y = ones.cumsum(1)
        xr = ones.cumsum(2)
        y = y / (y[:, -1:, :] + eps) * two_pi
        xr = xr / (xr[:, :, -1:] + eps) * two_pi
        freq = 10000 ** (
            2 * (torch.arange(self.dimension, dtype=torch.float32, device=x.device) // 2) / self.dimension
        )
        xr, y = xr.unsqueeze(-1) / freq, y.unsqueeze(-1) / freq
        pe_x = torch.stack((xr[..., 0::2].sin(), xr[..., 1::2].cos()), dim=-1).flatten(3)
        pe_y = torch.stack((y[..., 0::2].sin(), y[..., 1::2].cos()), dim=-1).flatten(3)
        return torch.cat((pe_y, pe_x), dim=3).permute(0, 3, 1, 2)
