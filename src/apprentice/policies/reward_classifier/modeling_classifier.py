"""Reward classifier (lerobot's `Classifier`): per camera a conv trunk → learned spatial embeddings →
latent; the cameras' latents → an MLP head → success logit. Trained offline on frames labelled by
`next.reward`; used online as the reward (and optional termination) through `rl.reward.ClassifierReward`.
Module names (`encoders.<camera>.<i>`, `classifier_head.<i>`) follow lerobot's."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from apprentice.policies.base import Policy
from apprentice.policies.config import OBS_IMAGE_PREFIX, PolicyError
from apprentice.policies.normalize import Stats
from apprentice.policies.reward_classifier.configuration_classifier import REWARD, RewardClassifierConfig
from apprentice.policies.sac.networks import DefaultImageEncoder, SpatialLearnedEmbeddings


class Classifier(Policy):
    config_class = RewardClassifierConfig

    def __init__(self, config: RewardClassifierConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        self.config: RewardClassifierConfig = config
        self.image_keys = [k for k in config.input_features if k.startswith(OBS_IMAGE_PREFIX)]
        shape = config.input_features[self.image_keys[0]].shape
        # One trunk shared by the cameras (lerobot shares its pretrained encoder the same way).
        self.encoder = DefaultImageEncoder(shape[0], config.encoder_hidden_dim, shape)
        with torch.no_grad():
            _, c, h, w = self.encoder(torch.zeros(1, *shape)).shape
        self.encoders = nn.ModuleDict()
        for key in self.image_keys:
            self.encoders[key.replace(".", "_")] = nn.Sequential(
                self.encoder,
                SpatialLearnedEmbeddings(h, w, c, config.image_embedding_pooling_dim),
                nn.Dropout(config.dropout_rate),
                nn.Linear(c * config.image_embedding_pooling_dim, config.latent_dim),
                nn.LayerNorm(config.latent_dim),
                nn.Tanh(),
            )
        out = 1 if config.num_classes == 2 else config.num_classes
        self.classifier_head = nn.Sequential(
            nn.Linear(config.latent_dim * config.num_cameras, config.hidden_dim),
            nn.Dropout(config.dropout_rate),
            nn.LayerNorm(config.hidden_dim),
            nn.ReLU(),
            nn.Linear(config.hidden_dim, out),
        )

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        # The trunk appears under `encoder.` and every `encoders.<cam>.0.`; saved once, as safetensors does.
        full = super().state_dict(*args, **kwargs)
        return {k: v for k, v in full.items() if not (k.startswith("encoders.") and k.split(".")[2] == "0")}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        sd = dict(state_dict)
        for key in list(sd):
            if key.startswith("encoder."):
                for cam in self.encoders:
                    sd.setdefault(f"encoders.{cam}.0.{key[len('encoder.'):]}", sd[key])
        return super().load_state_dict(sd, strict=strict, assign=assign)

    def _images(self, batch: dict[str, Any]) -> list[Tensor]:
        missing = [k for k in self.image_keys if k not in batch]
        if missing:
            raise PolicyError(f"reward_classifier: the observation lacks cameras {missing}; it has {sorted(batch)}")
        out = []
        for key in self.image_keys:
            x = torch.as_tensor(batch[key], device=self.device)
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            if x.ndim == 5:  # (B, 1, C, H, W) from a one-frame window
                x = x[:, -1]
            out.append(self.normalizer.normalize(key, x))
        return out

    def logits(self, batch: dict[str, Any]) -> Tensor:
        latents = [self.encoders[k.replace(".", "_")](x) for k, x in zip(self.image_keys, self._images(batch),
                                                                       strict=True)]
        logits = self.classifier_head(torch.cat(latents, dim=-1))
        return logits.squeeze(-1) if self.config.num_classes == 2 else logits

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy against `next.reward` (binary: > 0.5 is success); logs accuracy."""
        if REWARD not in batch:
            raise PolicyError(f"reward_classifier: the batch has no {REWARD!r} labels (keys {sorted(batch)})")
        labels = torch.as_tensor(batch[REWARD], device=self.device).float().reshape(-1)
        logits = self.logits(batch)
        if self.config.num_classes == 2:
            target = (labels > 0.5).float()
            loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
            pred = (logits > 0).float()
        else:
            target = labels.long()
            loss = nn.functional.cross_entropy(logits, target)
            pred = logits.argmax(dim=-1)
        return loss, {"accuracy": float((pred == target).float().mean() * 100)}

    @torch.no_grad()
    def predict_reward(self, batch: dict[str, Any], threshold: float = 0.5) -> Tensor:
        """(B,) reward: 1.0 where the success probability exceeds `threshold` (class index for > 2 classes)."""
        logits = self.logits(batch)
        if self.config.num_classes == 2:
            return (torch.sigmoid(logits) > threshold).float()
        return logits.argmax(dim=-1).float()

    def select_action(self, obs: dict[str, Any]) -> Tensor:
        raise PolicyError("reward_classifier is a reward model, not a policy; use predict_reward")

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            [p for p in self.parameters() if p.requires_grad],
            lr=lr or self.config.learning_rate,
            weight_decay=self.config.weight_decay,
            fused=fused or None,
        )
