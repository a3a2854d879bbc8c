"""Meta-World MT1 tasks and MT50 groups behind lerobot's metaworld keys, Meta-World's policies as expert."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("metaworld")

from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.benchmarks.metaworld import policy_class_name, suite_members, task_names
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
    assert suite_members("hard") == [f"metaworld_{t}" for t in DIFFICULTY_TO_TASKS["hard"]]


@pytest.fixture(scope="module")
def hard():
    env = make_env("metaworld_hard_mixed", seed=0, render=False)
    yield env
    env.close()


def test_keys_shapes_seeded_layouts_and_render() -> None:
    env = make_env(resolve_task("metaworld", "push-v3"), seed=0, image_height=32, image_width=32)
    try:
        assert env.fps == 80 and env.max_episode_steps == 500 and env.task == TASK_DESCRIPTIONS["push-v3"]
        obs, _ = env.reset(seed=3)
        assert set(obs) == {"observation.state", "observation.image"} == set(env.features) - {"action"}
        assert obs["observation.state"].shape == (4,) and obs["observation.image"].shape == (32, 32, 3)
        assert obs["observation.image"].std() > 0 and env.action_space.shape == (4,)
        layout = env.inner._last_rand_vec.copy()  # the object and goal positions drawn at reset
        env.reset(seed=3)
        np.testing.assert_allclose(env.inner._last_rand_vec, layout)
        env.reset(seed=4)
        assert not np.allclose(env.inner._last_rand_vec, layout)
    finally:
        env.close()


def test_a_group_plays_its_tasks_in_turn_and_the_expert_follows(hard) -> None:
    seen = [(hard.reset(seed=s), hard.task_name)[1] for s in (0, 1, 6, 7)]
    tasks = DIFFICULTY_TO_TASKS["hard"]
    assert seen == [tasks[0], tasks[1], tasks[0], tasks[1]] and hard.task == TASK_DESCRIPTIONS[tasks[1]]
    expert = make_expert(hard)
    assert all(run_expert_episode(hard, expert, seed, 0)[0] for seed in (0, 1))  # assembly, hand-insert


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


# Seeds on which Meta-World's own policy fails (it re-targets a held peg / lid / cube / puck, or presses a
# hooked stick toward the table) and the corrected expert succeeds; env, success test and seeds are Meta-World's.
@pytest.mark.parametrize(
    ("task", "seeds"),
    [
        ("peg-insert-side-v3", (4, 28)),
        ("box-close-v3", (29, 35)),
        ("sweep-into-v3", (76, 87)),
        ("stick-pull-v3", (0,)),
        ("push-v3", (52,)),
    ],
)
def test_corrected_experts_pass_seeds_metaworlds_policy_fails(task, seeds) -> None:
    import metaworld.policies

    env = make_env(f"metaworld_{task}", seed=0, render=False)
    try:
        expert = make_expert(env)
        assert all(run_expert_episode(env, expert, seed, 0)[0] for seed in seeds)
        own = getattr(metaworld.policies, policy_class_name(task))()
        assert not run_expert_episode(env, _Own(env, own), seeds[0], 0)[0]  # the failure being corrected
    finally:
        env.close()


class _Own:
    """Meta-World's policy on the same env, as the wrapper used it before the correction."""

    def __init__(self, env, policy) -> None:
        self.env, self.policy = env, policy

    def reset(self, obs=None) -> None:
        pass

    def act(self, obs=None) -> np.ndarray:
        return np.clip(self.policy.get_action(self.env._raw), -1.0, 1.0).astype(np.float32)
