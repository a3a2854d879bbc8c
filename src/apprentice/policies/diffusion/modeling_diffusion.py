"""Diffusion Policy in plain torch: ResNet-18 + spatial-softmax image encoder, conditional 1-D UNet,
DDPM training and DDPM/DDIM sampling. Module names match LeRobot's `modeling_diffusion.py`."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.base import Policy, adam_from_config
from apprentice.policies.checkpointing import Checkpointable
from apprentice.policies.config import ACTION, OBS_ENV_STATE, OBS_STATE
from apprentice.policies.diffusion.configuration_diffusion import DiffusionConfig
from apprentice.policies.diffusion.scheduler import NoiseScheduler
from apprentice.policies.diffusion.unet import ConditionalUnet1d
from apprentice.policies.normalize import Stats
from apprentice.policies.resnet import ResNet18, load_backbone_weights, run_stem

OBS_IMAGES = "observation.images"


class DiffusionPolicy(Policy):
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        self.config: DiffusionConfig = config
        self.diffusion = DiffusionModel(config)
        self.reset()

    def reset(self) -> None:
        n = self.config.n_obs_steps
        self._queues: dict[str, deque[Tensor]] = {
            OBS_STATE: deque(maxlen=n),
            ACTION: deque(maxlen=self.config.n_action_steps),
        }
        if self.config.image_features:
            self._queues[OBS_IMAGES] = deque(maxlen=n)
        if self.config.env_state_feature is not None:
            self._queues[OBS_ENV_STATE] = deque(maxlen=n)

    def init_pretrained_backbone(self) -> None:
        if self.config.pretrained_backbone_weights and self.config.image_features:
            for enc in self.diffusion.rgb_encoders():
                load_backbone_weights(enc.backbone, self.config.pretrained_backbone_weights)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if ".backbone." in n and p.requires_grad]

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        return adam_from_config(self.optim_groups(), self.config, lr, fused)

    def make_scheduler(
        self, optimizer: torch.optim.Optimizer, num_steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        warmup = self.config.scheduler_warmup_steps
        cosine = self.config.scheduler_name == "cosine"

        # diffusers' "cosine" schedule with warmup (what LeRobot uses): linear warmup, then half a cosine.
        def factor(step: int) -> float:
            if not cosine:
                return 1.0  # diffusers' "constant" ignores num_warmup_steps
            if step < warmup:
                return step / max(1, warmup)
            progress = (step - warmup) / max(1, num_steps - warmup)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * 0.5 * progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _stack_images(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.config.image_features:
            batch[OBS_IMAGES] = torch.stack([batch[k] for k in self.config.image_features], dim=-4)
        return batch

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """obs holds raw tensors with a time axis (B, n_obs_steps, ...) or, without one, the latest step only."""
        self._check_obs(obs)
        batch = self._stack_images(self.normalizer.normalize_batch(obs))
        batch = {k: v for k, v in batch.items() if k in (OBS_STATE, OBS_ENV_STATE, OBS_IMAGES)}
        if batch[OBS_STATE].dim() == 2:  # no history given: repeat the current observation
            batch = {
                k: v.unsqueeze(1).expand(-1, self.config.n_obs_steps, *v.shape[1:]) for k, v in batch.items()
            }
        was_training = self.training
        self.eval()
        actions = self.diffusion.generate_actions(batch, generator=generator)
        self.train(was_training)
        return self._unnormalize_action(actions)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        self._check_obs(obs)
        batch = self._stack_images(self.normalizer.normalize_batch(obs))
        for key, queue in self._queues.items():
            if key == ACTION or key not in batch:
                continue
            # The first observation of an episode fills the whole history (LeRobot does the same).
            while len(queue) < queue.maxlen - 1:
                queue.append(batch[key])
            queue.append(batch[key])
        if not self._queues[ACTION]:
            stacked = {k: torch.stack(list(q), dim=1) for k, q in self._queues.items() if k != ACTION}
            was_training = self.training
            self.eval()
            actions = self._unnormalize_action(self.diffusion.generate_actions(stacked, generator=generator))
            self.train(was_training)
            self._queues[ACTION].extend(actions.transpose(0, 1))
        return self._queues[ACTION].popleft()

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        batch = self._stack_images(self.normalizer.normalize_batch(batch))
        loss = self.diffusion.compute_loss(batch)
        return loss, {}


class SpatialSoftmax(nn.Module):
    """Keypoints as the softmax-weighted mean (x, y) of each feature channel (Levine et al. 2016)."""

    def __init__(self, input_shape: tuple[int, int, int], num_kp: int | None) -> None:
        super().__init__()
        c, self._h, self._w = input_shape
        self.nets = nn.Conv2d(c, num_kp, kernel_size=1) if num_kp is not None else None
        self._out_c = num_kp if num_kp is not None else c
        pos_x, pos_y = np.meshgrid(np.linspace(-1.0, 1.0, self._w), np.linspace(-1.0, 1.0, self._h))
        grid = np.stack([pos_x.reshape(-1), pos_y.reshape(-1)], axis=1)
        self.register_buffer("pos_grid", torch.from_numpy(grid).float())

    def forward(self, features: Tensor) -> Tensor:
        if self.nets is not None:
            features = self.nets(features)
        attention = F.softmax(features.reshape(-1, self._h * self._w), dim=-1)
        return (attention @ self.pos_grid.to(attention.dtype)).view(-1, self._out_c, 2)


class RgbEncoder(Checkpointable):
    """Image (B, 3, H, W) in normalized units -> feature vector (B, 2 * num_keypoints)."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.resize_shape = config.resize_shape
        self.crop_shape = config.crop_shape
        self.crop_is_random = config.crop_is_random
        trunk = ResNet18(norm="group" if config.use_group_norm else "batch")
        self.backbone = nn.Sequential(*trunk.stages())
        c, h, w = next(iter(config.image_features.values())).shape
        hw = self.crop_shape or self.resize_shape or (h, w)
        # The shape probe runs in eval mode: BatchNorm (lerobot 0.6's default) cannot train on one 1x1 map,
        # which is what a small input (--policy.input_shapes) gives one dummy frame.
        self.backbone.eval()
        with torch.no_grad():
            fmap = self.backbone(torch.zeros(1, c, *hw)).shape[1:]
        self.backbone.train()
        self.pool = SpatialSoftmax(tuple(fmap), num_kp=config.spatial_softmax_num_keypoints)
        self.feature_dim = config.spatial_softmax_num_keypoints * 2
        self.out = nn.Linear(self.feature_dim, self.feature_dim)
        self.relu = nn.ReLU()

    def _crop(self, x: Tensor) -> Tensor:
        ch, cw = self.crop_shape
        h, w = x.shape[-2:]
        if self.training and self.crop_is_random:
            # The offsets are drawn on the image's device and applied as a gather: no host sync, and a
            # captured CUDA graph draws new ones every replay (a Python int would be frozen at capture).
            top = torch.randint(0, h - ch + 1, (1,), device=x.device)
            left = torch.randint(0, w - cw + 1, (1,), device=x.device)
            rows = top + torch.arange(ch, device=x.device)
            cols = left + torch.arange(cw, device=x.device)
            return x.index_select(-2, rows).index_select(-1, cols)
        top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
        return x[..., top : top + ch, left : left + cw]

    def forward(self, x: Tensor) -> Tensor:
        if self.resize_shape is not None:
            x = F.interpolate(x, size=self.resize_shape, mode="bilinear", antialias=True, align_corners=False)
        if self.crop_shape is not None:
            x = self._crop(x)
        stages = list(self.backbone)  # torchvision order: the stem (conv1, bn1, relu, maxpool), layer1..4
        x = self.run(run_stem, stages[:4], x)
        for stage in stages[4:]:
            x = self.run(stage, x)
        return self.relu(self.out(torch.flatten(self.pool(x), start_dim=1)))


class DiffusionModel(nn.Module):
    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        cond_dim = config.robot_state_feature.shape[0] if config.robot_state_feature is not None else 0
        n_cams = len(config.image_features)
        if n_cams:
            if config.use_separate_rgb_encoder_per_camera:
                self.rgb_encoder = nn.ModuleList([RgbEncoder(config) for _ in range(n_cams)])
                cond_dim += self.rgb_encoder[0].feature_dim * n_cams
            else:
                self.rgb_encoder = RgbEncoder(config)
                cond_dim += self.rgb_encoder.feature_dim * n_cams
        if config.env_state_feature is not None:
            cond_dim += config.env_state_feature.shape[0]
        self.unet = ConditionalUnet1d(
            config.action_feature.shape[0],
            cond_dim * config.n_obs_steps,
            tuple(config.down_dims),
            config.kernel_size,
            config.n_groups,
            config.diffusion_step_embed_dim,
            config.use_film_scale_modulation,
        )
        self.noise_scheduler = NoiseScheduler(
            config.noise_scheduler_type,
            config.num_train_timesteps,
            config.beta_schedule,
            config.beta_start,
            config.beta_end,
            config.prediction_type,
            config.clip_sample,
            config.clip_sample_range,
        )
        self.num_inference_steps = config.num_inference_steps or config.num_train_timesteps

    def rgb_encoders(self) -> list[RgbEncoder]:
        enc = self.rgb_encoder
        return list(enc) if isinstance(enc, nn.ModuleList) else [enc]

    def global_conditioning(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, n_obs_steps, ...) observations -> (B, n_obs_steps * cond_dim)."""
        feats = []
        ref = batch[OBS_STATE] if OBS_STATE in batch else batch[OBS_ENV_STATE]
        b, s = ref.shape[:2]
        if OBS_STATE in batch:
            feats.append(batch[OBS_STATE])
        if self.config.image_features:
            images = batch[OBS_IMAGES]  # (B, S, N, C, H, W)
            if isinstance(self.rgb_encoder, nn.ModuleList):
                per_cam = [
                    enc(images[:, :, i].flatten(0, 1)).view(b, s, -1)
                    for i, enc in enumerate(self.rgb_encoder)
                ]
                feats.append(torch.cat(per_cam, dim=-1))
            else:
                feats.append(self.rgb_encoder(images.flatten(0, 2)).view(b, s, -1))
        if self.config.env_state_feature is not None:
            feats.append(batch[OBS_ENV_STATE])
        return torch.cat([f.to(feats[-1].dtype) for f in feats], dim=-1).flatten(start_dim=1)

    def generate_actions(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        cond = self.global_conditioning(batch)
        sched = self.noise_scheduler
        sample = torch.randn(
            (cond.shape[0], self.config.horizon, self.config.action_feature.shape[0]),
            generator=generator,
            device=cond.device,
            dtype=cond.dtype,
        )
        sched.set_timesteps(self.num_inference_steps)
        for t in sched.timesteps.tolist():
            out = self.unet(
                sample, torch.full(sample.shape[:1], t, dtype=torch.long, device=cond.device), cond
            )
            sample = sched.step(out, t, sample, generator=generator)
        start = self.config.n_obs_steps - 1
        return sample[:, start : start + self.config.n_action_steps]

    def compute_loss(self, batch: dict[str, Tensor]) -> Tensor:
        cond = self.global_conditioning(batch)
        trajectory = batch[ACTION]
        noise = torch.randn_like(trajectory)
        t = torch.randint(
            0, self.config.num_train_timesteps, (trajectory.shape[0],), device=trajectory.device
        )
        noisy = self.noise_scheduler.add_noise(trajectory, noise, t)
        pred = self.unet(noisy, t, cond)
        target = noise if self.config.prediction_type == "epsilon" else trajectory
        loss = F.mse_loss(pred.float(), target.float(), reduction="none")
        if self.config.do_mask_loss_for_padding:
            # lerobot 0.6's normalization: the mean over valid (unpadded) elements, not over all of them.
            mask = (~batch["action_is_pad"]).unsqueeze(-1)
            return (loss * mask).sum() / (mask.sum() * loss.shape[-1]).clamp_min(1)
        return loss.mean()
