"""gym-hil PandaPickCube variants behind lerobot's gym_hil keys, the scripted pick expert, install errors."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("gym_hil")

from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.cli import resolve_task
from apprentice.sim.record import run_expert_episode


def test_pixel_variant_keys_and_shapes() -> None:
    env = make_env(resolve_task("gym_hil", "PandaPickCubeKeyboard-v0"), seed=0, image_height=24, image_width=32)
    try:
        assert env.fps == 10 and env.max_episode_steps == 100
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"observation.state", "observation.images.front", "observation.images.wrist"}
        assert set(env.features) == {*obs, "action"} and env.observation_space.contains(obs)
        assert obs["observation.state"].shape == (18,)
        assert obs["observation.images.front"].shape == (24, 32, 3) and obs["observation.images.wrist"].std() > 0
        assert env.action_space.shape == (4,) and env.action_space.high[3] == 2.0
        obs, _, _, _, info = env.step(np.array([0, 0, 0, 1], np.float32))
        assert info["is_success"] is False and "discrete_penalty" in info
    finally:
        env.close()


def test_state_variant_seeded_cube_and_expert() -> None:
    env = make_env(
        "gym_hil_pick_cube", seed=0, render=False, obs_type="environment_state_agent_pos", random_block_position=True
    )
    try:
        obs, _ = env.reset(seed=5)
        assert set(obs) == {"observation.state", "observation.environment_state"}
        cube = obs["observation.environment_state"].copy()
        np.testing.assert_allclose(env.reset(seed=5)[0]["observation.environment_state"], cube, atol=1e-7)
        assert not np.allclose(env.reset(seed=6)[0]["observation.environment_state"], cube)
        expert = make_expert(env)
        assert all(run_expert_episode(env, expert, seed, 0)[0] for seed in (1,))
    finally:
        env.close()


def test_raw_base_env_and_its_expert() -> None:
    env = make_env("gym_hil_pick_cube_base", seed=0, render=False, obs_type="environment_state_agent_pos")
    assert env.action_space.shape == (7,) and env.features["action"]["shape"] == [7]
    assert run_expert_episode(env, make_expert(env), 0, 0)[0]
    env.close()


def test_unknown_task_and_obs_type() -> None:
    with pytest.raises(SimError, match="PandaPickCube-v0"):
        resolve_task("gym_hil", "PandaPickBall-v0")
    with pytest.raises(SimError, match="environment_state_agent_pos"):
        make_env("gym_hil_pick_cube", obs_type="state")


def test_missing_extra_names_the_install_command(monkeypatch) -> None:
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda n, *a: _missing(n) if n == "gym_hil" else real(n))
    with pytest.raises(SimError, match=r"pip install 'apprentice\[hil\]'"):
        make_env("gym_hil_pick_cube", render=False)


def _missing(name: str):
    raise ImportError(f"No module named {name!r}")
