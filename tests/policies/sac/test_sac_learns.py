"""SAC on a toy continuous task: a 1-D point driven to a goal. It learns (the return improves clearly), and
the temperature update drives the policy's entropy toward the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apprentice.policies import make_config, make_policy
from apprentice.policies.sac import SACAlgorithm
from apprentice.rl import ReplayBuffer
from apprentice.rl.algorithm import OnlineAlgorithm
from apprentice.rl.transitions import mixed_batch

GOAL, STEPS = 0.5, 15


def make_sac(**fields: object) -> SACAlgorithm:
    defaults: dict[str, object] = {
        "input_features": {"observation.state": {"type": "STATE", "shape": [1]}},
        "output_features": {"action": {"type": "ACTION", "shape": [1]}},
        "latent_dim": 32,
        "actor_network_kwargs": {"hidden_dims": [64, 64]},
        "critic_network_kwargs": {"hidden_dims": [64, 64]},
        "discount": 0.9,
        "critic_target_update_weight": 0.02,
        "actor_lr": 1e-3,
        "critic_lr": 1e-3,
        "temperature_lr": 1e-3,
    }
    cfg = make_config("sac", **{**defaults, **fields})
    stats = {
        "observation.state": {"min": torch.tensor([-1.0]), "max": torch.tensor([1.0])},
        "action": {"min": torch.tensor([-1.0]), "max": torch.tensor([1.0])},
    }
    return SACAlgorithm(make_policy(cfg, stats))


def episode(act, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], float]:
    """x_{t+1} = clip(x_t + 0.2 a), reward -|x - goal|; frames include the final observation."""
    x = np.float32(rng.uniform(-1, 1))
    xs, actions, rewards = [x], [], []
    for _ in range(STEPS):
        a = float(np.clip(act(np.array([x], np.float32)), -1, 1))
        x = np.float32(np.clip(x + 0.2 * a, -1, 1))
        xs.append(x)
        actions.append(a)
        rewards.append(-abs(x - GOAL))
    frames = {
        "observation.state": np.array(xs, np.float32)[:, None],
        "action": np.array([*actions, 0.0], np.float32)[:, None],
        "next.reward": np.array([*rewards, 0.0], np.float32),
        "next.done": np.zeros(STEPS + 1, bool),  # time limit only: bootstrap through it
    }
    return frames, float(np.sum(rewards))


def mean_return(sac: SACAlgorithm, n: int = 10) -> float:
    sac.policy.eval()
    rng = np.random.default_rng(123)
    total = np.mean([episode(lambda s: sac.select_action({"observation.state": s})[0], rng)[1] for _ in range(n)])
    sac.policy.train()
    return float(total)


def test_sac_learns_point_to_goal() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sac = make_sac()
    assert isinstance(sac, OnlineAlgorithm)
    before = mean_return(sac)
    buffer = ReplayBuffer()
    for _ in range(40):
        frames, _ = episode(lambda s: sac.select_action({"observation.state": s})[0], rng)
        buffer.add_episode(frames, has_action=np.arange(STEPS + 1) < STEPS)
        for _ in range(STEPS):
            sac.update(mixed_batch(buffer, None, 64, ["observation.state"], rng))
    after = mean_return(sac)
    # Random: about -7 per episode; driving to the goal and staying: about -2.
    assert after > before + 2.0, (before, after)
    assert after > -3.5, after


@pytest.mark.parametrize("start", [0.05, 5.0])
def test_temperature_moves_toward_target_entropy(start: float) -> None:
    """Fixed critics aside, alpha grows when the policy's entropy is below target and shrinks above."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sac = make_sac(temperature_init=start, temperature_lr=3e-2)
    buffer = ReplayBuffer()
    buffer.add_episode(episode(lambda s: rng.uniform(-1, 1), rng)[0], has_action=np.arange(STEPS + 1) < STEPS)
    batch = mixed_batch(buffer, None, 128, ["observation.state"], rng)
    with torch.no_grad():
        fb = sac._forward_batch(batch)
        _, logp, _ = sac.policy.actor(fb["state"])
    entropy = float(-logp.mean())
    alpha0 = sac.policy.temperature
    for _ in range(20):
        sac._step("temperature", sac.policy.loss_temperature(fb))
    alpha1 = sac.policy.temperature
    # dL/dlog_alpha = -alpha (logp + target) = alpha (entropy - target): alpha falls iff entropy > target.
    if entropy > sac.policy.target_entropy:
        assert alpha1 < alpha0
    else:
        assert alpha1 > alpha0
    assert sac.policy.target_entropy == -0.5  # -|A|/2


def test_utd_ratio_runs_that_many_critic_updates() -> None:
    rng = np.random.default_rng(0)
    sac = make_sac(utd_ratio=3)
    buffer = ReplayBuffer()
    buffer.add_episode(episode(lambda s: 0.0, rng)[0], has_action=np.arange(STEPS + 1) < STEPS)
    sac.update(mixed_batch(buffer, None, 3 * 16, ["observation.state"], rng))
    assert sac.optimizers["critic"].state_dict()["state"][0]["step"].item() == 3
    assert sac.optimizers["actor"].state_dict()["state"][0]["step"].item() == 1
    with pytest.raises(Exception, match="utd_ratio=3"):
        sac.update(mixed_batch(buffer, None, 16, ["observation.state"], rng))
