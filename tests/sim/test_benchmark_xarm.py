"""gym-xarm XarmLift-v0 behind lerobot's xarm keys, its scripted expert, and the install errors."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

pytest.importorskip("gym_xarm")

from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.cli import main as sim_main
from apprentice.sim.cli import resolve_task
from apprentice.sim.record import run_expert_episode


def test_keys_shapes_and_seeded_resets() -> None:
    env = make_env(resolve_task("xarm", "XarmLift-v0"), seed=0, image_height=32, image_width=32)
    try:
        assert env.fps == 15 and env.max_episode_steps == 200 and env.image_key == "observation.image"
        obs, info = env.reset(seed=3)
        assert set(obs) == {"observation.state", "observation.image"} == set(env.features) - {"action"}
        assert obs["observation.state"].shape == (4,) and obs["observation.image"].shape == (32, 32, 3)
        assert obs["observation.image"].dtype == np.uint8 and obs["observation.image"].std() > 0  # rendered
        assert env.features["action"]["shape"] == [4] and env.observation_space.contains(obs)
        cube = env.cube_position.copy()
        again, _ = env.reset(seed=3)
        # the package steps the physics 10 times in reset, from MuJoCo's warm start: equal to ~1e-12
        np.testing.assert_allclose(again["observation.state"], obs["observation.state"], atol=1e-6)
        np.testing.assert_allclose(env.cube_position, cube, atol=1e-9)
        env.reset(seed=4)
        assert not np.allclose(env.cube_position, cube)
        obs, _, terminated, truncated, info = env.step(np.array([0, 0, 1, 1.5], np.float32))  # clipped
        assert not terminated and not truncated and info["is_success"] is False and "package_reward" in info
    finally:
        env.close()


def test_expert_lifts_the_cube_and_success_is_in_one_frame() -> None:
    env = make_env("xarm_lift", seed=0, render=False)
    expert = make_expert(env)
    results = [run_expert_episode(env, expert, seed, 0) for seed in range(3)]
    assert all(ok for ok, _ in results)
    assert env.lift_height() >= 0.15  # what success means; the package's own flag never turns on
    env.close()


def test_unknown_task_lists_the_valid_ones() -> None:
    with pytest.raises(SimError, match="XarmLift-v0"):
        resolve_task("xarm", "XarmPush-v0")
    with pytest.raises(SimError, match="XarmLift-v0"):
        make_env("xarm_lift", gym_task="XarmPush-v0")


def test_missing_package_names_its_install_command(monkeypatch, capsys) -> None:
    real_import = builtins.__import__

    def no_gym_xarm(name, *args, **kwargs):
        if name == "gym_xarm":
            raise ImportError("No module named 'gym_xarm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gym_xarm)
    assert sim_main(["expert", "--env.type=xarm", "--episodes=1"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'apprentice[xarm]' && pip install --no-deps gym-xarm==0.1.1" in err and err[-1] == "\n"
