"""TD-MPC (Hansen et al. 2022) with FOWM's offline-to-online changes (Feng et al. 2023), LeRobot-compatible.

Training (`forward`) rolls the latent dynamics `horizon` steps along a dataset window and regresses
latent consistency, rewards, Q (TD targets through V), V (expectile regression) and π (advantage-weighted
regression); `update()` then moves the EMA target networks. Acting (`select_action`) plans with MPPI/CEM
(planning.py), or uses π alone when `use_mpc=false`. State-dict keys are LeRobot's: `model.*` and
`model_target.*`.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from apprentice.policies.base import Policy
from apprentice.policies.config import ACTION, OBS_ENV_STATE, OBS_STATE, PolicyError
from apprentice.policies.normalize import Stats
from apprentice.policies.tdmpc.configuration_tdmpc import REWARD, TDMPCConfig
from apprentice.policies.tdmpc.networks import TDMPCTOLD, random_shifts_aug, update_ema
from apprentice.policies.tdmpc.planning import plan

STATE_PAD = f"{OBS_STATE}_is_pad"


class TDMPCPolicy(Policy):
    config_class = TDMPCConfig

    def __init__(self, config: TDMPCConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        self.config: TDMPCConfig = config
        self.model = TDMPCTOLD(config)
        self.model_target = copy.deepcopy(self.model)
        self.model_target.requires_grad_(False)
        self._encode_keys = [
            k for k in (*config.image_features, OBS_ENV_STATE, OBS_STATE) if k in config.input_features
        ]
        self.reset()

    def reset(self) -> None:
        """Forget queued actions and the CEM mean that warm-starts the next plan; call on env.reset()."""
        self._action_queue: deque[Tensor] = deque(maxlen=max(self.config.n_action_steps, self.config.n_action_repeats))
        self._prev_mean: Tensor | None = None

    # ------------------------------------------------------------------------------- optimizer
    def optim_groups(self) -> list[dict[str, Any]]:
        # All parameters, targets included (they never get a gradient): LeRobot's one Adam group.
        return [{"params": list(self.parameters())}]

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.optim_groups(), lr=lr or self.config.optimizer_lr, fused=fused or None)

    def update(self) -> None:
        """EMA step of the target networks; the trainer calls it after every optimizer step."""
        update_ema(self.model_target, self.model, self.config.target_model_momentum)

    # ---------------------------------------------------------------------------------- acting
    def _plan(self, obs: dict[str, Any], generator: torch.Generator | None) -> Tensor:
        """Raw observations (B, ...) -> normalized actions (horizon or 1, B, action) in [-1, 1]."""
        self._check_obs(obs)
        batch = self.normalizer.normalize_batch({k: obs[k] for k in self._encode_keys})
        z = self.model.encode(batch)
        if self.config.use_mpc:
            actions, self._prev_mean = plan(self.model, self.config, z, self._prev_mean, generator)
        else:
            actions = self.model.pi(z).unsqueeze(0)
        return actions.clamp(-1, 1)

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """The planned actions, raw units: (B, horizon, action) with MPC, (B, 1, action) with π alone."""
        return self._unnormalize_action(self._plan(obs, generator).transpose(0, 1))

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """One action (B, action) in raw units; plans again once the repeats/steps of the last plan are used."""
        if not self._action_queue:
            actions = self._unnormalize_action(self._plan(obs, generator))
            if self.config.n_action_repeats > 1:
                self._action_queue.extend([actions[0]] * self.config.n_action_repeats)
            else:
                self._action_queue.extend(actions[: self.config.n_action_steps])
        return self._action_queue.popleft()

    # -------------------------------------------------------------------------------- training
    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """batch: windows (B, horizon+1, ...) of observations, (B, horizon, ...) of actions and next.reward,
        plus their `<key>_is_pad` masks. Returns LeRobot's weighted loss and its parts."""
        cfg = self.config
        if REWARD not in batch:
            raise PolicyError(
                f"tdmpc: the training batch has no {REWARD!r}; TD-MPC learns from rewards — train on a dataset "
                f"with a {REWARD!r} feature (and 'next.done'), e.g. one recorded in sim with rewards"
            )
        batch = self.normalizer.normalize_batch(batch)
        # (B, T, ...) -> (T, B, ...): the loops below run over time.
        obs = {k: batch[k].transpose(0, 1) for k in self._encode_keys}
        action = batch[ACTION].transpose(0, 1)
        reward = batch[REWARD]
        reward = (reward.squeeze(-1) if reward.dim() == 3 else reward).transpose(0, 1).to(action.dtype)
        horizon, bsz = action.shape[:2]
        valid = {
            name: self._valid(batch, name, horizon + (name == STATE_PAD), bsz)
            for name in (STATE_PAD, f"{ACTION}_is_pad", f"{REWARD}_is_pad")
        }
        first_valid = valid[STATE_PAD][0] & valid[f"{ACTION}_is_pad"]  # (T, B): z_t is a real rollout
        next_valid, reward_valid = valid[STATE_PAD][1:], valid[f"{REWARD}_is_pad"]

        for key in cfg.image_features:
            if cfg.max_random_shift_ratio > 0:
                frames = obs[key]
                shifted = random_shifts_aug(frames.reshape(-1, *frames.shape[-3:]), cfg.max_random_shift_ratio)
                obs[key] = shifted.reshape(frames.shape)
        current = {k: v[0] for k, v in obs.items()}
        following = {k: v[1:] for k, v in obs.items()}

        # Latent rollout along the dataset's actions: z_0 from the observation, z_{t+1} from the dynamics.
        z_preds, reward_preds = [self.model.encode(current)], []
        for t in range(horizon):
            z_next, r = self.model.latent_dynamics_and_reward(z_preds[-1], action[t])
            z_preds.append(z_next)
            reward_preds.append(r)
        z = torch.stack(z_preds)  # (T+1, B, latent)
        q_preds = self.model.Qs(z[:-1], action)  # (ensemble, T, B)
        v_preds = self.model.V(z[:-1])

        with torch.no_grad():
            z_targets = self.model_target.encode(following)
            # FOWM eqn 3: TD targets through V (in-sample actions only), with the online model as FOWM does.
            q_targets = reward + cfg.discount * self.model.V(self.model.encode(following))
            v_targets = self.model_target.Q_min_of_two(z[:-1].detach(), action)

        decay = cfg.temporal_decay_coeff ** torch.arange(horizon, device=action.device, dtype=action.dtype)
        decay = decay.unsqueeze(-1)  # (T, 1): later steps of the horizon weigh less
        consistency = decay * F.mse_loss(z[1:], z_targets, reduction="none").mean(-1) * first_valid * next_valid
        reward_loss = (
            decay * F.mse_loss(torch.stack(reward_preds), reward, reduction="none") * reward_valid * first_valid
        )
        q_err = F.mse_loss(q_preds, q_targets.expand_as(q_preds), reduction="none").sum(0)  # summed over the ensemble
        q_loss = decay * q_err * first_valid * reward_valid * next_valid
        diff = v_targets - v_preds
        # Expectile regression: under-estimates weigh τ, over-estimates 1 − τ.
        expectile = torch.where(diff > 0, cfg.expectile_weight, 1 - cfg.expectile_weight)
        v_loss = decay * expectile * diff**2 * first_valid
        consistency, reward_loss, q_loss, v_loss = (x.sum(0).mean() for x in (consistency, reward_loss, q_loss, v_loss))

        # π by advantage-weighted regression (FOWM §3.1) on the detached rollout.
        z = z.detach()
        with torch.no_grad():
            advantage = self.model_target.Q_min_of_two(z[:-1], action) - self.model.V(z[:-1])
            weight = torch.exp(advantage * cfg.advantage_scaling).clamp(max=100.0)
        action_err = F.mse_loss(self.model.pi(z[:-1]), action, reduction="none").sum(-1)  # (T, B)
        # Mean over time too (not a sum like the other terms): LeRobot's and FOWM's choice.
        pi_loss = (weight * action_err * decay * first_valid).mean()

        loss = (
            cfg.consistency_coeff * consistency
            + cfg.reward_coeff * reward_loss
            + cfg.value_coeff * q_loss
            + cfg.value_coeff * v_loss
            + cfg.pi_coeff * pi_loss
        )
        info = {
            "consistency_loss": consistency.detach(),
            "reward_loss": reward_loss.detach(),
            "Q_value_loss": q_loss.detach(),
            "V_value_loss": v_loss.detach(),
            "pi_loss": pi_loss.detach(),
            "Q": q_preds.detach().mean(),
            "V": v_preds.detach().mean(),
        }
        return loss, info

    @staticmethod
    def _valid(batch: dict[str, Any], name: str, length: int, bsz: int) -> Tensor:
        """~pad mask as (T, B); a batch without the mask has no padding."""
        pad = batch.get(name)
        if pad is None:
            return torch.ones(length, bsz, dtype=torch.bool, device=batch[ACTION].device)
        return ~pad.transpose(0, 1).bool()
