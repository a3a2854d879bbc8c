"""Meta-World MT1 tasks and MT50 groups behind lerobot's metaworld keys, Meta-World's policies as expert."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("metaworld")

from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.benchmarks.metaworld import policy_class_name, task_names
from apprentice.sim.cli import resolve_task
from apprentice.sim.metaworld_tasks import DIFFICULTY_TO_TASKS, TASK_DESCRIPTIONS
from apprentice.sim.record import run_expert_episode


def test_groups_cover_mt50_and_every_task_has_a_policy() -> None:
    import metaworld
    import metaworld.policies

    grouped = [t for tasks in DIFFICULTY_TO_TASKS.values() for t in tasks]
    assert sorted(grouped) == sorted(TASK_DESCRIPTIONS) == sorted(metaworld.ALL_V3_ENVIRONMENTS)
    assert all(hasattr(metaworld.policies, policy_class_name(t)) for t in TASK_DESCRIPTIONS)
    assert task_names("metaworld-push-v3") == ["push-v3"] and len(task_names("very_hard")) == 5


def test_keys_shapes_seeded_layouts_and_render() -> None:
    env = make_env(resolve_task("metaworld", "push-v3"), seed=0, image_height=32, image_width=32)
    try:
        assert env.fps == 80 and env.max_episode_steps == 500 and env.task == "Push the puck to a goal"
        obs, _ = env.reset(seed=3)
        assert set(obs) == {"observation.state", "observation.image"} == set(env.features) - {"action"}
        assert obs["observation.state"].shape == (4,) and obs["observation.image"].shape == (32, 32, 3)
        assert obs["observation.image"].std() > 0 and env.action_space.shape == (4,)
        puck = env._raw[4:7].copy()
        env.reset(seed=3)
        np.testing.assert_allclose(env._raw[4:7], puck)
        env.reset(seed=4)
        assert not np.allclose(env._raw[4:7], puck)
    finally:
        env.close()


def test_expert_on_a_few_tasks_and_a_group_plays_its_tasks_in_turn() -> None:
    env = make_env("metaworld_reach-v3", seed=0, render=False)
    expert = make_expert(env)
    assert all(run_expert_episode(env, expert, s, 0)[0] for s in (0, 1))
    env.close()
    group = make_env("metaworld_hard", seed=0, render=False)  # builds a task's env on first use: 2 here
    seen = [(group.reset(seed=s), group.task_name)[1] for s in (0, 1, 6, 7)]
    hard = DIFFICULTY_TO_TASKS["hard"]
    assert seen == [hard[0], hard[1], hard[0], hard[1]] and group.task == TASK_DESCRIPTIONS[hard[1]]
    assert run_expert_episode(group, make_expert(group), 1, 0)[0]  # the group's expert follows the task
    group.close()


def test_unknown_task_and_missing_extra(monkeypatch) -> None:
    with pytest.raises(SimError, match="push-v3"):
        resolve_task("metaworld", "push-v9")
    with pytest.raises(SimError, match="very_hard"):
        task_names("push-v9")
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda n, *a: _missing(n) if n == "metaworld" else real(n))
    with pytest.raises(SimError, match=r"pip install 'apprentice\[metaworld\]'"):
        make_env("metaworld_push-v3", render=False)


def _missing(name: str):
    raise ImportError(f"No module named {name!r}")
