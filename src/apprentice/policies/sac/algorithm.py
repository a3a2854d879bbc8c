"""SAC's update: Adam per part (actor, critic, temperature, discrete critic) and LeRobot's order —
`utd_ratio - 1` critic-only updates, then critic + actor + temperature, Polyak after each critic update.
Implements `apprentice.rl.algorithm.OnlineAlgorithm`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from apprentice.policies.config import PolicyError
from apprentice.policies.sac.modeling_sac import SACPolicy
from apprentice.rl.algorithm import NEXT_PREFIX

# What lerobot 0.6's SACAlgorithm.state_dict holds (its algorithm/model.safetensors).
ALGORITHM_PREFIXES = ("critic_ensemble.", "critic_target.", "discrete_critic_target.")


class SACAlgorithm:
    def __init__(self, policy: SACPolicy, device: str | torch.device | None = None) -> None:
        self.policy = policy.to(device) if device is not None else policy
        self.config = policy.config
        self.device = policy.device
        clip = self.config.grad_clip_norm
        self.clip = clip
        actor_params = [p for n, p in policy.actor.named_parameters() if p.requires_grad and not (
            n.startswith("encoder.") and self.config.shared_encoder)]
        # Fused Adam: one kernel per part instead of about a dozen per parameter tensor, and no `.item()` of
        # step counters; the same arithmetic (the seeded losses match the single-tensor Adam to 1e-6), and
        # 2164 -> 1367 aten ops per PickCube update with the other changes here (benchmarks/sac_update_speed.py).
        adam = {"fused": True} if self.device.type in ("cuda", "cpu", "mps") else {"foreach": True}
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "actor": torch.optim.Adam(actor_params, lr=self.config.actor_lr, **adam),
            "critic": torch.optim.Adam(
                [p for p in policy.critic_ensemble.parameters() if p.requires_grad], lr=self.config.critic_lr, **adam
            ),
            "temperature": torch.optim.Adam([policy.log_alpha], lr=self.config.temperature_lr, **adam),
        }
        if policy.discrete_critic is not None:
            # The shared encoder learns from the continuous critics; the gripper head uses its features.
            params = [p for n, p in policy.discrete_critic.named_parameters() if not n.startswith("encoder.")]
            self.optimizers["discrete_critic"] = torch.optim.Adam(params, lr=self.config.critic_lr, **adam)
        # Parameter lists per part, built once (walking the module tree per step was ~10% of a CPU update).
        self._params = {name: [q for g in opt.param_groups for q in g["params"]]
                        for name, opt in self.optimizers.items()}
        self.optimization_step = 0

    # ------------------------------------------------------------------------------ update
    def _forward_batch(self, batch: dict[str, Tensor]) -> dict[str, Any]:
        p = self.policy
        keys = list(self.config.input_features)
        missing = [k for k in [*keys, *(NEXT_PREFIX + k for k in keys), "action", "next.reward", "next.done"]
                   if k not in batch]
        if missing:
            raise PolicyError(f"sac update: the batch lacks {missing}; it has {sorted(batch)}")
        state = p.prepare({k: batch[k] for k in keys})
        next_state = p.prepare({k: batch[NEXT_PREFIX + k] for k in keys})
        penalty = batch.get("complementary_info.discrete_penalty")
        return {
            "state": state,
            "next_state": next_state,
            "cache": p.image_cache(state),
            "next_cache": p.image_cache(next_state),
            "action": p.normalize_action(batch["action"].float()),
            "reward": batch["next.reward"].float().reshape(-1),
            "done": batch["next.done"].float().reshape(-1),
            "discrete_penalty": None if penalty is None else penalty.float().reshape(-1),
        }

    def _step(self, name: str, loss: Tensor) -> Tensor:
        """Backward, clip, Adam step; the grad norm stays on the device (read back only if asked)."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad = torch.nn.utils.clip_grad_norm_(self._params[name], self.clip)
        opt.step()
        return grad

    def _critics(self, fb: dict[str, Any], stats: dict[str, Tensor]) -> None:
        p = self.policy
        loss = p.loss_critic(fb)
        stats["critic_grad_norm"] = self._step("critic", loss)
        stats["loss_critic"] = loss.detach()
        if p.discrete_critic is not None:
            loss_d = p.loss_discrete_critic(fb)
            stats["discrete_critic_grad_norm"] = self._step("discrete_critic", loss_d)
            stats["loss_discrete_critic"] = loss_d.detach()
        p.update_target_networks()

    def update(self, batch: dict[str, Tensor], stats: bool = True) -> dict[str, float]:
        """One SAC step from `utd_ratio` stacked batches (B = utd_ratio * batch_size); returns losses.

        `stats=False` returns {} and reads nothing back from the device: each read is a host sync that
        stalls the launch queue (the HIL-SERL loop asks only when it logs)."""
        if not self.policy.training:
            self.policy.train()
        n = self.config.utd_ratio
        size = len(batch["action"])
        if size % n:
            raise PolicyError(f"sac update: batch of {size} is not utd_ratio={n} equal parts")
        # One host-to-device copy per key for all utd_ratio parts; the parts are views of it.
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        chunks = [{k: v[i * size // n:(i + 1) * size // n] for k, v in batch.items()} for i in range(n)]
        out: dict[str, Tensor] = {}
        for chunk in chunks[:-1]:
            self._critics(self._forward_batch(chunk), out)
        fb = self._forward_batch(chunks[-1])
        self._critics(fb, out)
        if self.optimization_step % self.config.policy_update_freq == 0:
            for _ in range(self.config.policy_update_freq):
                loss_a = self.policy.loss_actor(fb)
                out["actor_grad_norm"] = self._step("actor", loss_a)
                loss_t = self.policy.loss_temperature(fb)
                self._step("temperature", loss_t)
                out["loss_actor"] = loss_a.detach()
                out["loss_temperature"] = loss_t.detach()
        self.optimization_step += 1
        if not stats:
            return {}
        out["temperature"] = self.policy.alpha.reshape(())
        values = torch.stack([v.float().reshape(()) for v in out.values()]).tolist()  # one host read
        return dict(zip(out, values, strict=True))

    # ------------------------------------------------------------------------------ acting
    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One raw env observation → one raw action, sampled (exploration; eval mode gives the mode)."""
        return self.policy.select_action_numpy(obs)

    def actor_state_dict(self) -> dict[str, Tensor]:
        """What an actor needs: `actor.*` (its encoder included) and `discrete_critic.*`, on CPU."""
        sd = self.policy.state_dict()
        return {k: v.detach().cpu() for k, v in sd.items() if k.startswith(("actor.", "discrete_critic."))}

    def load_actor_state_dict(self, sd: Any) -> None:
        own = dict(self.policy.state_dict())
        unknown = [k for k in sd if k not in own]
        if unknown:
            raise PolicyError(f"actor weights do not fit this sac policy: unexpected {unknown[:5]}")
        own.update({k: v.to(self.device) for k, v in sd.items()})
        self.policy.load_state_dict(own)

    # ------------------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        return {
            "policy": {k: v.detach().cpu() for k, v in self.policy.state_dict().items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "optimization_step": self.optimization_step,
        }

    def load_state_dict(self, sd: Any) -> None:
        self.policy.load_state_dict({k: v.to(self.device) for k, v in sd["policy"].items()})
        for name, opt_sd in sd.get("optimizers", {}).items():
            if name not in self.optimizers:
                raise PolicyError(f"sac state: optimizer {name!r} is not one of {sorted(self.optimizers)}")
            self.optimizers[name].load_state_dict(opt_sd)
        self.optimization_step = int(sd.get("optimization_step", 0))

    def algorithm_tensors(self) -> dict[str, Tensor]:
        """lerobot 0.6's algorithm/model.safetensors: critics and targets without the encoder, log_alpha."""
        sd = super(SACPolicy, self.policy).state_dict()
        out = {k: v.detach().cpu().contiguous() for k, v in sd.items()
               if k.startswith(ALGORITHM_PREFIXES) and ".encoder." not in k}
        out["log_alpha"] = self.policy.log_alpha.detach().cpu().contiguous()
        return out


