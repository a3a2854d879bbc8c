"""SAC as one module with LeRobot 0.4's `SACPolicy` layout: `encoder_critic` (shared with the actor by
default), `actor`, `critic_ensemble` + `critic_target`, `discrete_critic` + `discrete_critic_target` (the
gripper, when `num_discrete_actions` is set) and `log_alpha`. Losses are here; the optimizers and the
update order are `SACAlgorithm`'s (algorithm.py).

Checkpoints: a module shared under several names (the encoder) is written once, under the name
safetensors' `save_model` keeps (the alphabetically first, `actor.encoder.*`), as lerobot's files have it.
A lerobot 0.6 `gaussian_actor` model.safetensors holds only `actor.*`/`discrete_critic.*` (the critics
live in its `algorithm/` dir); it loads here too, the critics then start fresh.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.base import Policy
from apprentice.policies.config import ACTION, OBS_IMAGE_PREFIX, PolicyError
from apprentice.policies.normalize import Stats
from apprentice.policies.sac.configuration_sac import SACConfig
from apprentice.policies.sac.networks import (
    MLP,
    Actor,
    CriticEnsemble,
    CriticHead,
    DiscreteCritic,
    SACObservationEncoder,
)

# Parts of the state dict a policy-only (lerobot 0.6 gaussian_actor) checkpoint may lack.
_TRAINING_ONLY = ("critic_ensemble.", "critic_target.", "discrete_critic_target.", "log_alpha")


class SACPolicy(Policy):
    config_class = SACConfig

    def __init__(self, config: SACConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        self.config: SACConfig = config
        action_dim = config.continuous_action_dim
        self.encoder_critic = SACObservationEncoder(config)
        self.encoder_actor = self.encoder_critic if config.shared_encoder else SACObservationEncoder(config)
        enc = self.encoder_critic
        critic_kw = {**vars(config.critic_network_kwargs), "init_final": None}

        def heads() -> list[CriticHead]:
            return [CriticHead(enc.output_dim + action_dim, **critic_kw) for _ in range(config.num_critics)]

        self.critic_ensemble = CriticEnsemble(enc, heads())
        self.critic_target = CriticEnsemble(enc, heads())
        self.critic_target.load_state_dict(self.critic_ensemble.state_dict())
        self.discrete_critic: DiscreteCritic | None = None
        self.discrete_critic_target: DiscreteCritic | None = None
        if config.num_discrete_actions is not None:
            dkw = dict(vars(config.discrete_critic_network_kwargs))
            self.discrete_critic = DiscreteCritic(enc, enc.output_dim, output_dim=config.num_discrete_actions, **dkw)
            self.discrete_critic_target = DiscreteCritic(
                enc, enc.output_dim, output_dim=config.num_discrete_actions, **dkw
            )
            self.discrete_critic_target.load_state_dict(self.discrete_critic.state_dict())
        self.actor = Actor(
            self.encoder_actor,
            MLP(self.encoder_actor.output_dim, **vars(config.actor_network_kwargs)),
            action_dim,
            encoder_is_shared=config.shared_encoder,
            **vars(config.policy_kwargs),
        )
        self.log_alpha = nn.Parameter(torch.tensor([math.log(config.temperature_init)]))
        self.target_entropy = (
            config.target_entropy
            if config.target_entropy is not None
            else -(action_dim + (1 if config.num_discrete_actions is not None else 0)) / 2
        )
        self._polyak: tuple[list[Tensor], list[Tensor]] | None = None  # (targets, online), built on first use
        # Targets move by Polyak averaging only; their encoder is the online one (not frozen here).
        for target in (self.critic_target, self.discrete_critic_target):
            for name, p in target.named_parameters() if target is not None else []:
                if not name.startswith("encoder."):
                    p.requires_grad_(False)

    @property
    def temperature(self) -> float:
        return float(self.log_alpha.detach().exp())

    @property
    def alpha(self) -> Tensor:
        """The temperature as a (1,) tensor, no grad: the losses use it without a host read per update."""
        return self.log_alpha.detach().exp()

    # ------------------------------------------------------------------ state dict (lerobot's names)
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        """One name per tensor: a shared module's tensors under their alphabetically first name."""
        full = super().state_dict(*args, **kwargs)
        seen: set[int] = set()
        out = {}
        for key in sorted(full, key=lambda k: k.replace("_orig_mod.", "")):
            ident = id(full[key]) if full[key].data_ptr() == 0 else (full[key].data_ptr(), full[key].dtype)
            if ident in seen:
                continue
            seen.add(ident)  # type: ignore[arg-type]
            out[key] = full[key]
        return {k: out[k] for k in full if k in out}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        """Accepts lerobot 0.4 (all of it, `_orig_mod.` of compiled critics included) and 0.6 (actor only)."""
        sd = {k.replace("_orig_mod.", ""): v for k, v in state_dict.items()}
        groups = self._alias_groups()
        for names in groups:
            given = next((n for n in names if n in sd), None)
            if given is not None:
                for n in names:
                    sd.setdefault(n, sd[given])
        result = super().load_state_dict(sd, strict=False, assign=assign)
        self._polyak = None  # assign=True swaps the parameter objects
        missing = [k for k in result.missing_keys if not k.startswith(_TRAINING_ONLY)]
        if strict and (missing or result.unexpected_keys):
            raise PolicyError(f"sac state dict: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
        result.missing_keys[:] = missing
        return result

    def _alias_groups(self) -> list[list[str]]:
        by_tensor: dict[int, list[str]] = {}
        for name, t in super().state_dict(keep_vars=True).items():
            by_tensor.setdefault(id(t), []).append(name)
        return [names for names in by_tensor.values() if len(names) > 1]

    # ------------------------------------------------------------------------------ inputs
    def prepare(self, obs: dict[str, Any]) -> dict[str, Tensor]:
        """Raw observations (images uint8 or float in [0, 1], (B, C, H, W)) → the normalized inputs."""
        out = {}
        for key in self.config.input_features:
            x = obs[key]
            x = torch.as_tensor(x, device=self.device)
            if key.startswith(OBS_IMAGE_PREFIX):
                x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            out[key] = self.normalizer.normalize(key, x.float())
        return out

    def normalize_action(self, action: Tensor) -> Tensor:
        """Raw executed action → the actor's [-1, 1] continuous part; a discrete gripper column stays an index."""
        d = self.config.continuous_action_dim
        cont = self.normalizer.normalize(ACTION, action[..., :d])
        return torch.cat([cont, action[..., d:d + 1]], dim=-1) if self.config.num_discrete_actions else cont

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> Tensor:
        """(B, action_dim [+ 1 gripper index]) in raw units: a sample in train mode (exploration), the mode in
        eval mode."""
        self._check_obs(obs)
        batch = self.prepare(obs)
        cache = self.actor.encoder.image_features(batch) if self.actor.encoder.has_images else None
        action, _, _ = self.actor(batch, cache, deterministic=not self.training)
        action = self.normalizer.unnormalize(ACTION, action)
        if self.discrete_critic is not None:
            dcache = cache if self.config.shared_encoder else None
            grip = self.discrete_critic(batch, dcache).argmax(dim=-1, keepdim=True).to(action.dtype)
            action = torch.cat([action, grip], dim=-1)
        return action

    def select_action_numpy(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One env observation (images H, W, C uint8) → one raw action."""
        batch = {}
        for key in self.config.input_features:
            x = torch.from_numpy(np.ascontiguousarray(obs[key]))
            if key.startswith(OBS_IMAGE_PREFIX) and x.shape[-1] in (1, 3) and x.ndim == 3:
                x = x.permute(2, 0, 1)
            batch[key] = x.unsqueeze(0)
        return self.select_action(batch)[0].cpu().numpy()

    # ------------------------------------------------------------------------------ losses
    def image_cache(self, batch: dict[str, Tensor]) -> dict[str, Tensor] | None:
        """Frozen shared trunk: its maps once per batch for every head (LeRobot's observation_feature)."""
        enc = self.encoder_critic
        if not enc.has_images or not self.config.freeze_vision_encoder:
            return None
        with torch.no_grad():
            return enc.image_features(batch)

    def loss_critic(self, fb: dict[str, Any]) -> Tensor:
        cfg = self.config
        with torch.no_grad():
            next_a, next_logp, _ = self.actor(fb["next_state"], fb["next_cache"])
            q_next = self.critic_target(fb["next_state"], next_a, fb["next_cache"])
            if cfg.num_subsample_critics is not None:
                q_next = q_next[torch.randperm(cfg.num_critics)[: cfg.num_subsample_critics]]
            min_q = q_next.min(dim=0).values
            if cfg.use_backup_entropy:
                min_q = min_q - self.alpha * next_logp
            td_target = fb["reward"] + (1 - fb["done"]) * cfg.discount * min_q
        q = self.critic_ensemble(fb["state"], fb["action"][:, : cfg.continuous_action_dim], fb["cache"])
        # Mean over the batch per critic, summed over critics (LeRobot's reduction).
        return F.mse_loss(q, td_target.expand_as(q), reduction="none").mean(dim=1).sum()

    def loss_discrete_critic(self, fb: dict[str, Any]) -> Tensor:
        assert self.discrete_critic is not None and self.discrete_critic_target is not None
        idx = fb["action"][:, -1:].round().long().clamp(0, self.config.num_discrete_actions - 1)
        reward = fb["reward"] + fb["discrete_penalty"] if fb.get("discrete_penalty") is not None else fb["reward"]
        with torch.no_grad():  # double DQN: pick with the online head, value with the target head
            best = self.discrete_critic(fb["next_state"], fb["next_cache"]).argmax(dim=-1, keepdim=True)
            q_next = self.discrete_critic_target(fb["next_state"], fb["next_cache"]).gather(1, best).squeeze(-1)
            target = reward + (1 - fb["done"]) * self.config.discount * q_next
        q = self.discrete_critic(fb["state"], fb["cache"]).gather(1, idx).squeeze(-1)
        return F.mse_loss(q, target)

    def loss_actor(self, fb: dict[str, Any]) -> Tensor:
        a, logp, _ = self.actor(fb["state"], fb["cache"])
        q = self.critic_ensemble(fb["state"], a, fb["cache"]).min(dim=0).values
        return (self.alpha * logp - q).mean()

    def loss_temperature(self, fb: dict[str, Any]) -> Tensor:
        with torch.no_grad():
            _, logp, _ = self.actor(fb["state"], fb["cache"])
        return (-self.log_alpha.exp() * (logp + self.target_entropy)).mean()

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        raise PolicyError(
            "sac trains online (SACAlgorithm.update); run `apprentice train --policy.type=hilserl` "
            "or --policy.type=sac with --online_training=true"
        )

    @torch.no_grad()
    def update_target_networks(self) -> None:
        """Polyak: target ← w·online + (1 − w)·target, w = critic_target_update_weight."""
        if self._polyak is None:  # the lists once: walking named_parameters per update cost more than the lerp
            pairs = [(self.critic_target, self.critic_ensemble)]
            if self.discrete_critic is not None and self.discrete_critic_target is not None:
                pairs.append((self.discrete_critic_target, self.discrete_critic))
            self._polyak = ([p for t, _ in pairs for n, p in t.named_parameters() if not n.startswith("encoder.")],
                            [p for _, o in pairs for n, p in o.named_parameters() if not n.startswith("encoder.")])
        torch._foreach_lerp_(*self._polyak, self.config.critic_target_update_weight)

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        raise PolicyError("sac has one optimizer per part; use apprentice.policies.sac.SACAlgorithm")
