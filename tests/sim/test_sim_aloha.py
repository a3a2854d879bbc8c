"""ALOHA transfer-cube: LeRobot's layout, the 0..4 reward, and the scripted expert's success over 10 seeds."""

from __future__ import annotations

import numpy as np

from apprentice.sim import make_env, make_expert
from apprentice.sim.record import run_expert_episode


def test_layout_matches_lerobot_aloha_sim() -> None:
    env = make_env("aloha_transfer_cube", image_height=48, image_width=64)
    obs, _ = env.reset(seed=0)
    assert env.fps == 50 and env.max_episode_steps == 400 and env.robot_type == "aloha"
    assert env.joint_names[:7] == [
        "left_waist",
        "left_shoulder",
        "left_elbow",
        "left_forearm_roll",
        "left_wrist_angle",
        "left_wrist_rotate",
        "left_gripper",
    ]
    assert len(env.joint_names) == 14 and env.joint_names[7] == "right_waist"
    assert obs["observation.state"].shape == (14,) and obs["observation.images.top"].shape == (48, 64, 3)
    assert "observation.environment_state" not in obs
    # grippers start open (normalized 1) and the cube rests on the table on the right arm's side
    np.testing.assert_allclose(obs["observation.state"][[6, 13]], 1.0, atol=1e-6)
    assert env.cube_position[0] > 0 and abs(env.cube_position[2] - 0.02) < 1e-6
    _, reward, terminated, _, info = env.step(obs["observation.state"])
    assert reward == 0.0 and not terminated and not info["is_success"]
    env.close()


def test_expert_transfers_the_cube_in_at_least_9_of_10_seeds() -> None:
    env = make_env("aloha_transfer_cube", render=False, terminate_on_success=False)
    expert = make_expert(env)
    rewards = []
    successes = []
    for seed in range(10):
        ok, _ = run_expert_episode(env, expert, seed, frames_after_success=0)
        successes.append(ok)
        rewards.append(env._evaluate()[0])
    assert np.mean(successes) >= 0.9, successes
    # the cube ends in the left gripper, off the table
    assert np.mean([r == 4.0 for r in rewards]) >= 0.9, rewards
    assert env.cube_position[2] > 0.1


def test_same_seed_same_rollout() -> None:
    envs = [make_env("aloha_transfer_cube", seed=4, image_height=48, image_width=64) for _ in range(2)]
    experts = [make_expert(env) for env in envs]
    observations = [env.reset()[0] for env in envs]
    for expert, obs in zip(experts, observations):
        expert.reset(obs)
    for _ in range(60):
        observations = [env.step(expert.act(obs))[0] for env, expert, obs in zip(envs, experts, observations)]
    for key in observations[0]:
        np.testing.assert_array_equal(observations[0][key], observations[1][key])
    # another seed puts the cube elsewhere
    other = make_env("aloha_transfer_cube", seed=5, render=False)
    other.reset()
    envs[0].reset(seed=4)
    assert not np.allclose(other.cube_position, envs[0].cube_position)


def test_insertion_expert_inserts_the_peg_in_at_least_9_of_10_seeds() -> None:
    env = make_env("aloha_insertion", render=False)
    assert env.joint_names == make_env("aloha_transfer_cube", render=False).joint_names
    expert = make_expert(env)
    env.reset(seed=0)
    assert env._evaluate() == (0.0, False)  # both objects on the table, nothing held
    successes = [run_expert_episode(env, expert, seed, frames_after_success=0)[0] for seed in range(10)]
    assert np.mean(successes) >= 0.9, successes
    # success is the peg's tip on the pin inside the socket, both held off the table
    assert env._evaluate() == (4.0, True)
    assert abs(env.body_position("peg")[2] - env.body_position("socket")[2]) < 0.004
