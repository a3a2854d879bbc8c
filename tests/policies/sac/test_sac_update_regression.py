"""A seeded SAC update gives the losses the update gave before the speed work (commit 7b91931: per-key
host copies, float reads after every step, single-tensor Adam): the faster update is the same math."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apprentice.policies import make_config, make_policy
from apprentice.policies.sac import SACAlgorithm
from apprentice.rl import ReplayBuffer
from apprentice.rl.transitions import mixed_batch

KEYS = ["observation.environment_state", "observation.state"]
# stats of updates 1..3 (utd_ratio 2, discrete gripper, batch 2 x 32), printed by this test's setup at 7b91931.
GOLDEN = [
    {"critic_grad_norm": 3.840555, "loss_critic": 0.9057595, "discrete_critic_grad_norm": 6.073524,
     "loss_discrete_critic": 0.3907507,
     "actor_grad_norm": 0.1878097, "loss_actor": 0.03431667, "loss_temperature": 0.2751292, "temperature": 0.09997001},
    {"critic_grad_norm": 7.173025, "loss_critic": 1.141639, "discrete_critic_grad_norm": 7.188505,
     "loss_discrete_critic": 0.5092421,
     "actor_grad_norm": 0.2457227, "loss_actor": 0.06403919, "loss_temperature": 0.2898365, "temperature": 0.09993998},
    {"critic_grad_norm": 3.489948, "loss_critic": 0.7884263, "discrete_critic_grad_norm": 9.010118,
     "loss_discrete_critic": 0.4004329,
     "actor_grad_norm": 0.3846346, "loss_actor": 0.01596488, "loss_temperature": 0.2807766, "temperature": 0.09990998},
]


def _episode(rng: np.random.Generator, steps: int = 20) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = steps + 1
    action = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    action[:, 2] = rng.integers(0, 3, n)
    frames = {
        "observation.state": rng.normal(size=(n, 5)).astype(np.float32),
        "observation.environment_state": rng.normal(size=(n, 3)).astype(np.float32),
        "action": action, "next.reward": (rng.random(n) < 0.2).astype(np.float32), "next.done": rng.random(n) < 0.05,
        "complementary_info.discrete_penalty": -0.1 * (rng.random(n) < 0.3).astype(np.float32),
    }
    return frames, np.arange(n) < steps


def run_updates(stats: bool = True) -> tuple[list[dict[str, float]], SACAlgorithm]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = make_config(
        "sac", num_discrete_actions=3, utd_ratio=2, latent_dim=16, temperature_init=0.1,
        actor_network_kwargs={"hidden_dims": [32, 32]}, critic_network_kwargs={"hidden_dims": [32, 32]},
        input_features={"observation.environment_state": {"type": "ENV", "shape": [3]},
                        "observation.state": {"type": "STATE", "shape": [5]}},
        output_features={"action": {"type": "ACTION", "shape": [2]}},
    )
    norm = {"observation.state": {"min": -3 * torch.ones(5), "max": 3 * torch.ones(5)},
             "observation.environment_state": {"min": -3 * torch.ones(3), "max": 3 * torch.ones(3)},
             "action": {"min": -torch.ones(2), "max": torch.ones(2)}}
    sac = SACAlgorithm(make_policy(cfg, norm))
    online, offline = ReplayBuffer(None), ReplayBuffer(None)
    for _ in range(3):
        online.add_episode(*_episode(rng))
        offline.add_episode(*_episode(rng))
    return [sac.update(mixed_batch(online, offline, 64, KEYS, rng), stats=stats) for _ in range(3)], sac


def test_seeded_updates_give_the_losses_of_before() -> None:
    got, _ = run_updates()
    for step, (g, want) in enumerate(zip(got, GOLDEN, strict=True)):
        for key, value in want.items():
            assert g[key] == pytest.approx(value, rel=1e-4, abs=1e-6), f"update {step}: {key}"


def test_updates_without_stats_read_nothing_and_learn_the_same() -> None:
    """stats=False (the in-process loop's updates) returns nothing and leaves the very same weights."""
    with_stats, a = run_updates(stats=True)
    without, b = run_updates(stats=False)
    assert without == [{}, {}, {}] and set(with_stats[0]) == set(GOLDEN[0])
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.optimization_step == b.optimization_step == 3
