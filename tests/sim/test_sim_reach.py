"""The reach task: shapes, features, determinism, bad actions, and the IK expert's success."""

from __future__ import annotations

import numpy as np
import pytest

from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.record import run_expert_episode


def test_reset_and_step_match_the_declared_features() -> None:
    env = make_env("reach", seed=0)
    obs, info = env.reset()
    assert info == {"is_success": False}
    assert set(obs) == set(env.features) - {"action"}
    for key, value in obs.items():
        ft = env.features[key]
        assert list(value.shape) == ft["shape"], key
        assert value.dtype == (np.uint8 if ft["dtype"] == "video" else np.float32), key
    assert env.features["observation.state"]["names"] == env.joint_names
    assert env.joint_names == ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    assert env.fps == 30 and env.robot_type == "sim_so101"
    # the target given to the policy is where the target is, and it shows in the top image (red pixels)
    np.testing.assert_allclose(obs["observation.environment_state"], env.target, atol=1e-6)
    image = obs["observation.images.top"].astype(int)
    assert ((image[..., 0] > 180) & (image[..., 1] < 60)).sum() >= 4
    _, reward, terminated, truncated, info = env.step(obs["observation.state"])
    assert 0.0 <= reward <= 1.0 and not terminated and not truncated and info["is_success"] is False
    env.close()


def test_same_seed_same_episode_and_different_seeds_differ() -> None:
    a, b = make_env("reach", seed=5), make_env("reach", seed=5)
    obs_a, _ = a.reset()
    obs_b, _ = b.reset()
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    action = obs_a["observation.state"] + 0.1
    for _ in range(5):
        step_a, step_b = a.step(action)[0], b.step(action)[0]
    for key in step_a:
        np.testing.assert_array_equal(step_a[key], step_b[key])
    targets = {tuple(np.round(a.reset(seed=s)[0]["observation.environment_state"], 4)) for s in range(10)}
    assert len(targets) == 10
    # without a seed, later resets continue the first seed's stream: a new target each episode
    assert not np.allclose(a.reset()[0]["observation.environment_state"], a.reset()[0]["observation.environment_state"])


def test_bad_actions_are_refused_with_the_reason() -> None:
    env = make_env("reach", render=False)
    env.reset()
    with pytest.raises(SimError, match="expected 6"):
        env.step(np.zeros(5))
    with pytest.raises(SimError, match="NaN"):
        env.step(np.full(6, np.nan))
    with pytest.raises(SimError, match="unknown sim task"):
        make_env("nope")


def test_zero_action_never_reaches_a_target() -> None:
    env = make_env("reach", render=False)
    for seed in range(5):
        env.reset(seed=seed)
        successes = [env.step(np.zeros(6))[4]["is_success"] for _ in range(40)]
        assert not any(successes)


def test_expert_reaches_the_target_in_every_one_of_20_seeds() -> None:
    env = make_env("reach", render=False)
    expert = make_expert(env)
    results = [run_expert_episode(env, expert, seed, frames_after_success=0) for seed in range(20)]
    success_rate = np.mean([ok for ok, _ in results])
    assert success_rate >= 0.95, results
    assert expert.ik_error < 1e-3
    # episodes are a few seconds: the expert gets there in about 1.5 s
    assert max(frames for _, frames in results) <= 60
