"""Run a policy in an env for whole episodes and return them as replay-buffer frames.

Env-agnostic: any gymnasium-style env of `apprentice.sim` (observations keyed by dataset feature name,
`info["is_success"]`, a scalar reward). The policy is anything with `reset()` and
`select_action(batch) -> (1, action_dim)` in raw units, as `apprentice.policies` policies are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

IMAGE_PREFIX = "observation.images."


@dataclass
class Episode:
    frames: dict[str, np.ndarray]  # T + 1 frames: the final observation is the last one
    has_action: np.ndarray  # (T + 1,) false on the final observation
    seed: int
    sum_reward: float
    success: bool

    @property
    def length(self) -> int:
        """Number of steps taken (transitions)."""
        return int(self.has_action.sum())


def _as_batch(obs: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """One env observation as the policy's batch of one: images (1, 3, H, W) float in [0, 1]."""
    batch = {}
    for key, value in obs.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if key.startswith(IMAGE_PREFIX):
            tensor = tensor.permute(2, 0, 1).float().div_(255.0)
        batch[key] = tensor.float().unsqueeze(0).to(device)
    return batch


def _stored(key: str, value: np.ndarray) -> np.ndarray:
    # Images as uint8 (C, H, W), the layout of the trainer's frame cache; the rest as float32.
    if key.startswith(IMAGE_PREFIX):
        return np.ascontiguousarray(np.asarray(value, dtype=np.uint8).transpose(2, 0, 1))
    return np.asarray(value, dtype=np.float32)


@torch.no_grad()
def collect_episode(env: Any, policy: Any, seed: int, device: str | torch.device = "cpu") -> Episode:
    """One episode from `env.reset(seed=seed)` until terminated or truncated."""
    device = torch.device(device)
    obs, _ = env.reset(seed=int(seed))
    policy.reset()
    observations = [{k: _stored(k, v) for k, v in obs.items()}]
    actions, rewards, dones, successes = [], [], [], []
    success = False
    while True:
        action = policy.select_action(_as_batch(obs, device))
        action = action.detach().to("cpu").float().numpy().reshape(-1)
        obs, reward, terminated, truncated, info = env.step(action)
        success |= bool(info.get("is_success", False))
        actions.append(action.astype(np.float32))
        rewards.append(float(reward))
        dones.append(bool(terminated or truncated))
        successes.append(bool(info.get("is_success", False)))
        observations.append({k: _stored(k, v) for k, v in obs.items()})
        if terminated or truncated:
            break
    n = len(actions)
    frames = {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    # The final observation has no action: its transition slots are padding (has_action false).
    frames["action"] = np.concatenate([np.stack(actions), np.zeros((1, actions[0].shape[0]), np.float32)])
    # One value per frame, (T + 1,), as LeRobotDataset gives its shape-[1] reward/done columns.
    frames["next.reward"] = np.asarray([*rewards, 0.0], dtype=np.float32)
    frames["next.done"] = np.asarray([*dones, True], dtype=bool)
    frames["next.success"] = np.asarray([*successes, success], dtype=bool)
    has_action = np.arange(n + 1) < n
    return Episode(frames, has_action, int(seed), float(np.sum(rewards)), success)


def collect_episodes(
    env: Any, policy: Any, n_episodes: int, first_seed: int, device: str | torch.device = "cpu"
) -> list[Episode]:
    """`n_episodes` episodes with seeds first_seed, first_seed + 1, …; the policy in eval mode meanwhile."""
    was_training = getattr(policy, "training", False)
    if hasattr(policy, "eval"):
        policy.eval()
    try:
        return [collect_episode(env, policy, first_seed + i, device) for i in range(n_episodes)]
    finally:
        if was_training:
            policy.train()
