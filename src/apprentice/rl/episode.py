"""One HIL-SERL episode: the policy acts, an operator may take over, every step is a transition with the
executed action and its intervention flag; optional per-step callback (the learner's updates)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from apprentice.rl.intervention import DISCRETE_PENALTY, IS_INTERVENTION, InterventionSource
from apprentice.rl.reward import RewardSource

IMAGE_PREFIX = "observation.images."


def _stored(key: str, value: np.ndarray) -> np.ndarray:
    if key.startswith(IMAGE_PREFIX):  # (C, H, W) uint8, the trainer's layout
        return np.ascontiguousarray(np.asarray(value, dtype=np.uint8).transpose(2, 0, 1))
    return np.asarray(value, dtype=np.float32)


def run_episode(
    env: Any,
    seed: int,
    act: Callable[[dict[str, np.ndarray]], np.ndarray],
    reset: Callable[[], None] | None = None,
    human: InterventionSource | None = None,
    reward_source: RewardSource | None = None,
    on_step: Callable[[], None] | None = None,
    flag_all: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """Frames (T + 1, the final observation last), has_action, and {success, length, interventions, reward}.

    `next.done` is termination only (success, cube out of bounds): a time limit is not an end state, so
    the critic bootstraps through it. `flag_all`: every step is a human's (scripted demos).
    """
    obs, _ = env.reset(seed=int(seed))
    if reset is not None:
        reset()
    if human is not None:
        human.reset()
    keys = list(obs)
    observations = [{k: _stored(k, obs[k]) for k in keys}]
    actions, rewards, dones, flags, penalties = [], [], [], [], []
    success = False
    while True:
        action = np.asarray(act(obs), dtype=np.float32).reshape(-1)
        taken = human.intervene(obs, action) if human is not None else None
        executed = np.asarray(taken if taken is not None else action, dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(executed)
        if reward_source is not None:
            reward, stop = reward_source(obs, float(reward), info)
            terminated = terminated or stop
        success |= bool(info.get("is_success", False))
        actions.append(executed)
        rewards.append(float(reward))
        dones.append(bool(terminated))
        flags.append(float(flag_all or taken is not None))
        penalties.append(float(info.get("discrete_penalty", 0.0)))
        observations.append({k: _stored(k, obs[k]) for k in keys})
        if on_step is not None:
            on_step()
        if terminated or truncated:
            break
    n = len(actions)
    frames = {k: np.stack([o[k] for o in observations]) for k in keys}
    frames["action"] = np.concatenate([np.stack(actions), np.zeros((1, len(actions[0])), np.float32)])
    frames["next.reward"] = np.asarray([*rewards, 0.0], np.float32)
    frames["next.done"] = np.asarray([*dones, True], bool)
    frames[IS_INTERVENTION] = np.asarray([*flags, 0.0], np.float32)
    frames[DISCRETE_PENALTY] = np.asarray([*penalties, 0.0], np.float32)
    stats = {"success": success, "length": n, "interventions": int(sum(flags)), "sum_reward": float(sum(rewards))}
    return frames, np.arange(n + 1) < n, stats
