"""VQ-BeT in plain torch: ResNet-18 + spatial-softmax image encoder, a GPT over (image, state,
action-query) tokens of the last `n_obs_steps` steps, and the code/offset action head over a residual
VQ-VAE action tokenizer. Module names match LeRobot's `modeling_vqbet.py`, so checkpoints load key
for key and act the same for the same inputs and seed.

Token layout (n = n_obs_steps, p = n_action_pred_token, A_Q = the learned action-query token):

    [img_{t-n+1}, state_{t-n+1}, A_Q, ..., img_t, state_t, A_Q, A_Q x (p - 1)]

The GPT's outputs at the A_Q positions predict the action chunks starting at t-n+1 ... t+p-1; at
inference only the chunk starting at t is executed.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from apprentice.policies.base import Policy, adam_from_config
from apprentice.policies.config import ACTION, OBS_STATE, PolicyError
from apprentice.policies.diffusion.modeling_diffusion import SpatialSoftmax
from apprentice.policies.normalize import Stats
from apprentice.policies.resnet import ResNet18, load_backbone_weights
from apprentice.policies.vqbet.configuration_vqbet import VQBeTConfig
from apprentice.policies.vqbet.gpt import GPT
from apprentice.policies.vqbet.head import VQBeTHead
from apprentice.policies.vqbet.vqvae import mlp

log = logging.getLogger(__name__)
OBS_IMAGES = "observation.images"


class VQBeTPolicy(Policy):
    config_class = VQBeTConfig
    # Phase 1 trains only the VQ-VAE, phase 2 everything but it: DDP must expect parameters without grads.
    find_unused_parameters: ClassVar[bool] = True

    def __init__(self, config: VQBeTConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        config.validate_features()
        self.config: VQBeTConfig = config
        self.vqbet = VQBeTModel(config)
        self.reset()

    def reset(self) -> None:
        n = self.config.n_obs_steps
        self._queues: dict[str, deque[Tensor]] = {
            OBS_IMAGES: deque(maxlen=n),
            OBS_STATE: deque(maxlen=n),
            ACTION: deque(maxlen=self.config.action_chunk_size),
        }
        self._warned = False

    # ---------------------------------------------------------------- training phase and optimizer
    @property
    def discretized(self) -> bool:
        """True once the VQ-VAE is trained and frozen (the GPT phase); saved in model.safetensors."""
        return self.vqbet.action_head.discretized

    # ---------------------------------------------------------------- captured training (--cuda_graphs)
    # The step differs between the phases (phase 1 runs only the VQ-VAE), so the trainer captures one CUDA
    # graph per phase: it asks train_phase() before every step and re-captures when the answer changes.
    def train_phase(self) -> str:
        return "gpt" if self.discretized else "vqvae"

    def set_graph_safe(self, on: bool = True) -> None:
        """The step a CUDA graph can record: no host reads, random crops drawn on the image's device (on
        a CPU the same draws as the eager step), phase bookkeeping left to step_done()."""
        self.vqbet.action_head.graph_safe = on
        self.vqbet.rgb_encoder.graph_safe = on

    def step_done(self) -> None:
        """Called by the trainer after every step; in graph-safe mode it counts VQ-VAE steps on the host."""
        if self.vqbet.action_head.graph_safe:
            self.vqbet.action_head.count_step()

    def init_pretrained_backbone(self) -> None:
        if self.config.pretrained_backbone_weights:
            load_backbone_weights(self.vqbet.rgb_encoder.backbone, self.config.pretrained_backbone_weights)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.vqbet.rgb_encoder.backbone.parameters() if p.requires_grad]

    def optim_groups(self) -> list[dict[str, Any]]:
        """LeRobot's three groups, same order: GPT decayed weights + encoders + heads; the VQ-VAE at its own
        lr and weight decay; the GPT's biases/norms/embeddings without weight decay."""
        cfg, model, head = self.config, self.vqbet, self.vqbet.action_head
        decay, no_decay = model.policy.decay_groups()
        bins = (
            [head.map_to_cbet_preds_primary_bin, head.map_to_cbet_preds_secondary_bin]
            if cfg.sequentially_select
            else [head.map_to_cbet_preds_bin]
        )
        decay += [
            *model.rgb_encoder.parameters(),
            *model.state_projector.parameters(),
            *model.rgb_feature_projector.parameters(),
            model.action_token,
            *head.map_to_cbet_preds_offset.parameters(),
            *(p for m in bins for p in m.parameters()),
        ]
        vq = head.vqvae_model
        vqvae = [*vq.encoder.parameters(), *vq.decoder.parameters(), *vq.vq_layer.parameters()]

        def trainable(params: list[nn.Parameter]) -> list[nn.Parameter]:
            return [p for p in params if p.requires_grad]

        return [
            {"params": trainable(decay)},
            {
                "params": trainable(vqvae),
                "weight_decay": cfg.optimizer_vqvae_weight_decay,
                "lr": cfg.optimizer_vqvae_lr,
            },
            {"params": trainable(no_decay), "weight_decay": 0.0},
        ]

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        return adam_from_config(self.optim_groups(), self.config, lr, fused)

    def make_scheduler(
        self, optimizer: torch.optim.Optimizer, num_steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        vq_steps, warmup = self.config.n_vqvae_training_steps, self.config.scheduler_warmup_steps

        # LeRobot's VQBeTSchedulerConfig: constant while the VQ-VAE trains, then linear warmup and a
        # half cosine (whose progress, as LeRobot's, is measured against the whole run's length).
        def factor(step: int) -> float:
            if step < vq_steps:
                return 1.0
            step -= vq_steps
            if step < warmup:
                return step / max(1, warmup)
            progress = (step - warmup) / max(1, num_steps - warmup)
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    # ---------------------------------------------------------------- training
    def _prepare(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = self.normalizer.normalize_batch(batch)
        batch[OBS_IMAGES] = torch.stack([batch[k] for k in self.config.image_features], dim=-4)
        return batch

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Phase 1 (VQ-VAE not yet discretized): the VQ-VAE's loss on the action windows. Phase 2: the
        code and offset losses of the GPT and heads (the VQ-VAE frozen)."""
        if not self.discretized:
            actions = self.normalizer.normalize(ACTION, batch[ACTION])
            return self.vqbet.action_head.discretize(actions)
        _, (loss, info) = self.vqbet(self._prepare(batch), rollout=False)
        return loss, info

    # ---------------------------------------------------------------- inference
    def _check_ready(self) -> None:
        if not self.discretized and not self._warned:
            log.warning("vqbet: the VQ-VAE is not trained yet (phase 1); actions will be meaningless")
            self._warned = True

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict[str, Any]) -> Tensor:
        """(B, action_chunk_size, A) in raw units. obs holds a time axis (B, n_obs_steps, ...) or, without
        one, only the latest step, which then stands for the whole history."""
        self._check_obs(obs)
        self._check_ready()
        batch = self._prepare(obs)
        batch = {k: batch[k] for k in (OBS_STATE, OBS_IMAGES)}
        if batch[OBS_STATE].dim() == 2:
            n = self.config.n_obs_steps
            batch = {k: v.unsqueeze(1).expand(-1, n, *v.shape[1:]) for k, v in batch.items()}
        return self._rollout(batch)

    def _rollout(self, batch: dict[str, Tensor]) -> Tensor:
        was_training = self.training
        self.eval()
        actions = self.vqbet(batch, rollout=True)[:, : self.config.action_chunk_size]
        self.train(was_training)
        return self._unnormalize_action(actions)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> Tensor:
        """One action (B, A) per call from a queue refilled every action_chunk_size calls; the last
        n_obs_steps observations are kept (the first one of an episode fills the whole history)."""
        self._check_obs(obs)
        self._check_ready()
        batch = self._prepare(obs)
        for key in (OBS_STATE, OBS_IMAGES):
            queue = self._queues[key]
            while len(queue) < queue.maxlen - 1:
                queue.append(batch[key])
            queue.append(batch[key])
        if not self._queues[ACTION]:
            stacked = {k: torch.stack(list(self._queues[k]), dim=1) for k in (OBS_STATE, OBS_IMAGES)}
            self._queues[ACTION].extend(self._rollout(stacked).transpose(0, 1))
        return self._queues[ACTION].popleft()


class VQBeTRgbEncoder(nn.Module):
    """Image (B, 3, H, W) -> (B, 2 * spatial_softmax_num_keypoints): crop, ResNet-18, keypoints, Linear+ReLU."""

    def __init__(self, config: VQBeTConfig) -> None:
        super().__init__()
        self.crop_shape, self.crop_is_random = config.crop_shape, config.crop_is_random
        self.graph_safe = False  # VQBeTPolicy.set_graph_safe
        trunk = ResNet18(norm="group" if config.use_group_norm else "batch")
        self.backbone = nn.Sequential(*trunk.stages())  # indexed like torchvision's children()[:-2]
        c, h, w = next(iter(config.image_features.values())).shape
        with torch.no_grad():
            fmap = self.backbone(torch.zeros(1, c, *(self.crop_shape or (h, w)))).shape[1:]
        self.pool = SpatialSoftmax(tuple(fmap), num_kp=config.spatial_softmax_num_keypoints)
        self.feature_dim = config.spatial_softmax_num_keypoints * 2
        self.out = nn.Linear(self.feature_dim, self.feature_dim)
        self.relu = nn.ReLU()

    def _crop(self, x: Tensor) -> Tensor:
        ch, cw = self.crop_shape
        h, w = x.shape[-2:]
        if self.training and self.crop_is_random and (h, w) != (ch, cw):
            if self.graph_safe:
                # Offsets drawn on the image's device and applied as a gather: a replayed CUDA graph draws
                # new ones every step (Python ints would be frozen at capture). On a CPU the draws are the
                # eager ones below; on a GPU they come from the CUDA generator instead of the CPU one.
                top = torch.randint(0, h - ch + 1, (1,), device=x.device)
                left = torch.randint(0, w - cw + 1, (1,), device=x.device)
                rows = top + torch.arange(ch, device=x.device)
                cols = left + torch.arange(cw, device=x.device)
                return x.index_select(-2, rows).index_select(-1, cols)
            # torchvision RandomCrop's draws, from the CPU generator as LeRobot's (no GPU sync)
            top = int(torch.randint(0, h - ch + 1, size=(1,)).item())
            left = int(torch.randint(0, w - cw + 1, size=(1,)).item())
        else:
            top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
        return x[..., top : top + ch, left : left + cw]

    def forward(self, x: Tensor) -> Tensor:
        if self.crop_shape is not None:
            x = self._crop(x)
        return self.relu(self.out(torch.flatten(self.pool(self.backbone(x)), start_dim=1)))


class VQBeTModel(nn.Module):
    """Observations (B, n_obs_steps, ...) -> GPT features at the action-query tokens -> action head."""

    def __init__(self, config: VQBeTConfig) -> None:
        super().__init__()
        self.config = config
        self.rgb_encoder = VQBeTRgbEncoder(config)
        self.num_images = len(config.image_features)
        # One learned query token, repeated wherever an action chunk is asked for (the authors found
        # independent tokens worse).
        self.action_token = nn.Parameter(torch.randn(1, 1, config.gpt_input_dim))
        self.state_projector = mlp(config.robot_state_feature.shape[0], [config.gpt_input_dim])
        self.rgb_feature_projector = mlp(self.rgb_encoder.feature_dim, [config.gpt_input_dim])
        self.policy = GPT(config)
        self.action_head = VQBeTHead(config)
        # Row i: the target actions of query token i (the chunk starting i steps after t-n+1).
        n_tokens = config.n_action_pred_token + config.n_obs_steps - 1
        self.register_buffer(
            "select_target_actions_indices",
            torch.stack([torch.arange(i, i + config.action_chunk_size) for i in range(n_tokens)]),
        )
        self.tokens_per_step = len(config.input_features) + 1
        # The GPT outputs read back: each step's action-query token, then the p - 1 extra ones at the end
        # (not saved: LeRobot's checkpoints have no such key).
        n, step = config.n_obs_steps, self.tokens_per_step
        query = [i * step + step - 1 for i in range(n)] + [n * step + j for j in range(config.n_action_pred_token - 1)]
        self.register_buffer("query_indices", torch.tensor(query), persistent=False)
        if self.tokens_per_step != self.num_images + 2:
            raise PolicyError(
                f"vqbet: inputs must be observation.state and one camera, got {sorted(config.input_features)}"
            )

    def forward(self, batch: dict[str, Tensor], rollout: bool) -> Any:
        state, images = batch[OBS_STATE], batch[OBS_IMAGES]  # (B, n, S), (B, n, N, C, H, W)
        b, n = state.shape[:2]
        if n != self.config.n_obs_steps:
            raise PolicyError(
                f"vqbet: got {n} observation steps, the config says n_obs_steps={self.config.n_obs_steps}"
            )
        features = self.rgb_encoder(images.flatten(0, 2)).view(b, n, self.num_images, -1)
        rgb_tokens = self.rgb_feature_projector(features)  # (B, n, N, d)
        tokens = [rgb_tokens[:, :, i] for i in range(self.num_images)]
        tokens.append(self.state_projector(state))
        tokens.append(self.action_token.expand(b, n, -1))
        tokens = torch.stack(tokens, dim=2).flatten(1, 2)  # (B, n * tokens_per_step, d), interleaved per step
        extra = self.config.n_action_pred_token - 1
        tokens = torch.cat([tokens, self.action_token.expand(b, extra, -1)], dim=1)
        out = self.policy(tokens).index_select(1, self.query_indices)  # (B, n + p - 1, d)
        head = self.action_head(out)
        if rollout:  # the chunk that starts now
            return head["predicted_action"][:, n - 1].reshape(b, self.config.action_chunk_size, -1)
        target = batch[ACTION][:, self.select_target_actions_indices]  # (B, n + p - 1, W, A)
        return head, self.action_head.loss(head, target)
