"""collect_episode on the real reach env: frames in the trainer's layout, rewards as the env gives them, and
reach's reward is dense (rises as the scripted expert closes in, success near the top)."""

from __future__ import annotations

import numpy as np
import torch

from apprentice.rl import ReplayBuffer, collect_episode
from apprentice.sim import make_env, make_expert


class ExpertAsPolicy:
    """The scripted expert behind the policy interface collect_episode uses (torch batch in, (1, A) out)."""

    def __init__(self, env) -> None:
        self.expert, self.fresh = make_expert(env), True

    def reset(self) -> None:
        self.fresh = True

    def select_action(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        obs = {k: v[0].numpy() for k, v in batch.items()}
        if self.fresh:
            self.expert.reset(obs)
            self.fresh = False
        return torch.from_numpy(self.expert.act(obs)).unsqueeze(0)


def test_expert_episode_on_reach_has_a_dense_rising_reward():
    env = make_env("reach", seed=0, render=False)
    episode = collect_episode(env, ExpertAsPolicy(env), seed=4)
    env.close()
    n = episode.length
    assert episode.success and 10 < n < env.max_episode_steps  # terminated on success
    frames = episode.frames
    assert frames["observation.state"].shape == (n + 1, 6) and frames["action"].shape == (n + 1, 6)
    assert episode.has_action.tolist() == [True] * n + [False]
    rewards = frames["next.reward"][:n]
    assert np.isclose(rewards.sum(), episode.sum_reward) and (rewards >= 0).all() and (rewards <= 1).all()
    # Dense: the reward climbs as the tip closes in (not a sparse 0/1 at the goal).
    assert rewards[-1] > 0.9 and rewards[-1] - rewards[0] > 0.2 and len(np.unique(rewards.round(3))) > n // 2
    assert frames["next.done"][n - 1] and not frames["next.done"][: n - 1].any()
    buffer = ReplayBuffer()
    buffer.add_episode(episode.frames, episode.has_action)
    batch = buffer.sample(4, {"observation.state": [0, 1], "action": [0], "next.reward": [0]}, np.random.default_rng(0))
    assert batch["observation.state"].shape == (4, 2, 6) and batch["next.reward"].shape == (4, 1)
