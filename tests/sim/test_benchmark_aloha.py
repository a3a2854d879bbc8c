"""gym-aloha behind `--env.type=aloha`: lerobot's keys and names, seeding, headless render, the scripted
experts on the real ViperX model, and `apprentice sim record` into a LeRobot v3.0 dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from apprentice.dataset import LeRobotDataset
from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.cli import main as sim_main
from apprentice.sim.cli import resolve_name
from apprentice.sim.record import run_expert_episode

# lerobot/aloha_sim_* info.json: observation.state / action names {"motors": [...]}, in this order
MOTORS = [
    f"{side}_{j}"
    for side in ("left", "right")
    for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
]
START_ARM = [0.0, -0.96, 1.16, 0.0, -0.3, 0.0]  # gym-aloha's START_ARM_POSE for each arm


def test_reset_and_step_give_lerobots_keys_and_shapes() -> None:
    env = make_env("aloha_transfer_cube", render=False)
    assert (env.fps, env.max_episode_steps, env.robot_type, env.camera) == (50, 400, "aloha", "top")
    assert env.task == "Pick up the cube with the right arm and transfer it to the left arm."
    assert env.joint_names == MOTORS and env.action_space.shape == (14,)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"observation.state"} and not info["is_success"]
    state = obs["observation.state"]
    assert state.shape == (14,) and state.dtype == np.float32
    np.testing.assert_allclose(state[:6], START_ARM, atol=1e-6)
    np.testing.assert_allclose(state[7:13], START_ARM, atol=1e-6)
    obs, reward, terminated, truncated, info = env.step(state)
    assert reward == 0.0 and not (terminated or truncated or info["is_success"])
    with pytest.raises(SimError, match="shape"):
        env.step(np.zeros(7))
    assert make_env("aloha_insertion", render=False).task == "Insert the peg into the socket."


def test_seeded_resets_replay() -> None:
    a, b = make_env("aloha_insertion", seed=3, render=False), make_env("aloha_insertion", seed=3, render=False)
    for _ in range(2):  # the constructor's seed, then the stream it starts
        obs_a, _ = a.reset()
        obs_b, _ = b.reset()
        np.testing.assert_array_equal(a.object_poses(), b.object_poses())
        action = obs_a["observation.state"] + 0.05
        for _ in range(5):
            obs_a = a.step(action)[0]
            obs_b = b.step(action)[0]
        np.testing.assert_array_equal(obs_a["observation.state"], obs_b["observation.state"])
    a.reset(seed=3)
    first = a.object_poses()
    a.reset(seed=4)
    assert not np.allclose(first, a.object_poses())
    # gym-aloha's own placement ranges: peg on the right half, socket on the left
    assert 0.1 <= first[0, 0] <= 0.2 and -0.2 <= first[1, 0] <= -0.1


def test_headless_render_at_a_small_size() -> None:
    env = make_env("aloha_transfer_cube", image_height=48, image_width=64)
    obs, _ = env.reset(seed=0)
    image = obs["observation.images.top"]
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert image.std() > 5, "a blank frame"
    assert env.observation_space["observation.images.top"].shape == (48, 64, 3)
    assert env.features["observation.images.top"]["shape"] == [48, 64, 3]
    np.testing.assert_array_equal(env.render(), image)
    env.close()  # frees the GL context; a later render makes a new one
    assert env.reset(seed=0)[0]["observation.images.top"].shape == (48, 64, 3)
    with pytest.raises(SimError, match="480x640"):
        make_env("aloha_transfer_cube", image_height=960, image_width=1280)


@pytest.mark.parametrize(("task", "seeds"), [("aloha_transfer_cube", (0, 1, 2)), ("aloha_insertion", (0, 1))])
def test_scripted_expert_succeeds(task: str, seeds: tuple[int, ...]) -> None:
    env = make_env(task, render=False)
    expert = make_expert(env)
    for seed in seeds:
        ok, frames = run_expert_episode(env, expert, seed, 0)
        assert ok, f"{task} expert failed on seed {seed}"
        assert env.reward == 4.0 and frames < 400
    if task == "aloha_transfer_cube":  # the left gripper holds the cube in the air
        assert env.object_poses()[0, 2] > 0.1


def test_sim_record_writes_lerobots_aloha_features(tmp_path: Path) -> None:
    root = tmp_path / "tc"
    argv = [
        "record",
        "--env.type=aloha",
        "--env.task=AlohaTransferCube-v0",
        "--num-episodes=1",
        "--keep-failed",
        "--env.episode_length=8",
        "--env.image_height=48",
        "--env.image_width=64",
        "--out",
        str(root),
    ]
    assert sim_main(argv) == 0
    ds = LeRobotDataset(root)
    assert (ds.fps, ds.num_episodes, ds.num_frames, ds.meta.info["robot_type"]) == (50, 1, 8, "aloha")
    assert ds.meta.tasks == ["Pick up the cube with the right arm and transfer it to the left arm."]
    for key in ("observation.state", "action"):
        assert ds.features[key]["dtype"] == "float32" and ds.features[key]["shape"] == [14]
        assert ds.features[key]["names"] == {"motors": MOTORS}
    top = ds.features["observation.images.top"]
    assert (top["dtype"], top["shape"], top["names"]) == ("video", [48, 64, 3], ["height", "width", "channel"])
    # the stored actions are the expert's on seed 0
    env = make_env("aloha_transfer_cube", render=False, max_episode_steps=8)
    frames: list[dict] = []
    run_expert_episode(env, make_expert(env), 0, None, frames.append)
    np.testing.assert_allclose(ds.column("action"), np.stack([f["action"] for f in frames]), atol=1e-6)
    assert ds.episode_frames(0, "observation.images.top").shape == (8, 48, 64, 3)


def test_names_and_missing_package_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_name("aloha") == "aloha_insertion"
    assert resolve_name("AlohaInsertion-v0") == "aloha_insertion"
    with pytest.raises(SimError, match="AlohaTransferCube-v0"):
        resolve_name("AlohaTransferCube-v9")
    monkeypatch.setitem(sys.modules, "gym_aloha", None)  # as if gym-aloha were not installed
    with pytest.raises(SimError, match=r"gym-aloha is not installed .*pip install 'apprentice\[sim\]'"):
        make_env("aloha_insertion", render=False)
