"""`pusht`: gym-pusht's PushT-v0 behind lerobot's pusht keys, its expert, `sim record`, and a trained policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from apprentice.dataset import LeRobotDataset
from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.cli import main as sim_main
from apprentice.sim.record import run_expert_episode

TASK = "Push the T-shaped block onto the T-shaped target."
MOTORS = {"motors": ["motor_0", "motor_1"]}
# lerobot/pusht's info.json features (without the default columns and the next.* rewards)
LEROBOT_PUSHT = {
    "observation.image": {"dtype": "video", "shape": [96, 96, 3], "names": ["height", "width", "channel"]},
    "observation.state": {"dtype": "float32", "shape": [2], "names": MOTORS},
    "action": {"dtype": "float32", "shape": [2], "names": MOTORS},
}
QUICK_SEED = 14  # an episode the expert finishes in few steps (keeps the recording test short)


@pytest.mark.parametrize(
    ("obs_type", "keys"),
    [
        ("pixels_agent_pos", {"observation.image": (96, 96, 3), "observation.state": (2,)}),
        ("environment_state_agent_pos", {"observation.environment_state": (16,), "observation.state": (2,)}),
    ],
)
def test_obs_types_give_lerobots_keys_and_shapes(obs_type: str, keys: dict[str, tuple[int, ...]]) -> None:
    env = make_env("pusht", obs_type=obs_type)
    assert (env.fps, env.max_episode_steps, env.task) == (10, 300, TASK)
    assert env.action_space.shape == (2,) and env.action_space.low.tolist() == [0, 0]
    assert env.action_space.high.tolist() == [512, 512]
    for obs in (env.reset(seed=0)[0], env.step(np.array([256.0, 256.0]))[0]):
        assert {k: v.shape for k, v in obs.items()} == keys
        assert obs in env.observation_space
    assert {k: tuple(ft["shape"]) for k, ft in env.features.items() if k != "action"} == keys
    if obs_type == "environment_state_agent_pos":
        # the 8 keypoints of the T, in the workspace's pixels
        assert np.all((obs["observation.environment_state"] > 0) & (obs["observation.environment_state"] < 512))
        assert env.features["observation.environment_state"]["names"]["motors"][15] == "motor_15"
    else:
        assert env.features == LEROBOT_PUSHT
    env.close()


def test_unknown_obs_type_and_option_are_named() -> None:
    with pytest.raises(SimError, match="environment_state_agent_pos"):
        make_env("pusht", obs_type="pixels")
    with pytest.raises(SimError, match=r"reach.*obs_type"):
        make_env("reach", obs_type="pixels_agent_pos")


def test_seeded_resets_are_reproducible() -> None:
    a, b = make_env("pusht", seed=3), make_env("pusht", seed=3)
    obs_a, obs_b = a.reset()[0], b.reset()[0]
    for _ in range(5):
        obs_a, obs_b = a.step(np.array([300.0, 300.0]))[0], b.step(np.array([300.0, 300.0]))[0]
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    first = a.reset(seed=11)[0]["observation.state"]
    np.testing.assert_array_equal(a.reset(seed=11)[0]["observation.state"], first)
    assert not np.array_equal(a.reset(seed=12)[0]["observation.state"], first)
    # the pusher goes where the action says (gym-pusht's PD loop)
    for _ in range(20):
        obs = b.step(np.array([250.0, 250.0]))[0]
    np.testing.assert_allclose(obs["observation.state"], [250.0, 250.0], atol=2.0)
    with pytest.raises(SimError, match=r"shape \(3,\)"):
        b.step(np.array([1.0, 2.0, 3.0]))


def test_headless_render_shows_the_goal_and_the_block() -> None:
    env = make_env("pusht")
    image = env.reset(seed=0)[0]["observation.image"]
    assert image.dtype == np.uint8
    colours = {tuple(int(c) for c in px) for px in image.reshape(-1, 3)}
    assert (144, 238, 144) in colours  # gym-pusht's LightGreen goal T
    assert any(abs(r - 119) < 3 and abs(g - 136) < 3 and abs(b - 153) < 3 for r, g, b in colours)  # the slate block
    frame = env.render()  # the video frame: lerobot's 384x384 visualisation
    assert frame.shape == (384, 384, 3) and frame.std() > 10


def test_block_on_the_goal_succeeds_and_terminates_only_when_asked() -> None:
    for terminate in (True, False):
        env = make_env("pusht", render=False, terminate_on_success=terminate)
        env.reset(seed=0)
        block = env.pusht.block
        block.angle = float(env.pusht.goal_pose[2])  # angle first: pymunk turns the body about its cog
        block.position = tuple(float(v) for v in env.pusht.goal_pose[:2])
        _, reward, terminated, _, info = env.step(np.array(env.pusht.agent.position))
        assert info["is_success"] and reward == 1.0 and info["coverage"] > 0.99
        assert terminated is terminate


def test_expert_succeeds_on_a_handful_of_seeds() -> None:
    env = make_env("pusht", render=False)
    expert = make_expert(env)
    results = [run_expert_episode(env, expert, seed, 0) for seed in range(5)]
    # measured: 100/100 over seeds 0-99 (`apprentice sim expert --env.type=pusht --episodes=100`)
    assert sum(ok for ok, _ in results) >= 4, results
    assert all(n < 300 for ok, n in results if ok)


def test_sim_record_writes_lerobot_pusht_layout_and_a_diffusion_policy_evaluates(tmp_path: Path) -> None:
    root = tmp_path / "pusht"
    argv = ["record", "--env.type=pusht", "--num-episodes=1", "--frames-after-success=2", f"--seed={QUICK_SEED}"]
    assert sim_main([*argv, "--out", str(root)]) == 0
    ds = LeRobotDataset(root)
    assert ds.fps == 10 and ds.meta.info["robot_type"] == "unknown" and ds.meta.tasks == [TASK]
    for key, ft in LEROBOT_PUSHT.items():
        assert {f: ds.features[key][f] for f in ft} == ft, key
    # the stored actions are the expert's on that seed (recording runs past success: no termination)
    env = make_env("pusht", render=False, terminate_on_success=False)
    frames: list[dict] = []
    assert run_expert_episode(env, make_expert(env), QUICK_SEED, 2, frames.append)[0]
    np.testing.assert_allclose(ds.column("action"), np.stack([f["action"] for f in frames]), atol=1e-4)
    item = ds[0]
    assert tuple(item["observation.image"].shape) == (3, 96, 96) and item["task"] == TASK

    # a tiny Diffusion Policy trained two steps on observation.image fits the env and evaluates
    from apprentice.policies import load_policy
    from apprentice.sim.eval import evaluate
    from apprentice.train.cli import main as train_main

    out = tmp_path / "train"
    tiny = ["--policy.down_dims=[32,64]", "--policy.horizon=8", "--policy.n_action_steps=4",
            "--policy.diffusion_step_embed_dim=16", "--policy.spatial_softmax_num_keypoints=8",
            "--policy.num_train_timesteps=4", "--policy.kernel_size=3", "--policy.drop_n_last_frames=3"]
    assert train_main(["--policy.type=diffusion", *tiny, f"--dataset.root={root}", f"--output_dir={out}",
                       "--steps=2", "--batch_size=2", "--save_freq=2", "--policy.device=cpu"]) == 0
    policy = load_policy(out / "checkpoints" / "last" / "pretrained_model")
    assert "observation.image" in policy.config.image_features
    info = evaluate(policy, "pusht", n_episodes=1, batch_size=1, env_kwargs={"max_episode_steps": 3})
    assert info["per_task"][0]["metrics"]["lengths"] == [3] and 0.0 <= info["overall"]["avg_max_reward"] <= 1.0
    with pytest.raises(SimError, match=r"observation\.image of shape"):
        evaluate(policy, "pusht", n_episodes=1, batch_size=1, env_kwargs={"image_height": 64, "image_width": 64})


def test_sim_record_keypoints_layout(tmp_path: Path) -> None:
    root = tmp_path / "pusht_keypoints"
    argv = ["record", "--env.type=pusht", "--env.obs_type=environment_state_agent_pos", "--num-episodes=1",
            "--frames-after-success=0", f"--seed={QUICK_SEED}", "--out", str(root)]
    assert sim_main(argv) == 0
    ds = LeRobotDataset(root)
    assert ds.camera_keys == []
    assert ds.features["observation.environment_state"]["shape"] == [16]
    assert ds[0]["observation.environment_state"].shape == (16,)
