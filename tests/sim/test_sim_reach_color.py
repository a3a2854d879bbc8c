"""`reach_color`: two targets, a per-episode instruction; the expert follows it, eval and record carry it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from apprentice.dataset import LeRobotDataset
from apprentice.sim import TASKS, SimError, make_env, make_expert
from apprentice.sim.eval import ExpertPolicy, evaluate
from apprentice.sim.reach import ReachExpert
from apprentice.sim.reach_color import INSTRUCTIONS
from apprentice.sim.record import record, run_expert_episode


def test_instruction_is_drawn_per_seed_and_the_state_does_not_reveal_it() -> None:
    env = make_env("reach_color", render=False)
    assert "reach_color" in TASKS
    tasks = []
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        state = obs["observation.environment_state"].reshape(2, 3)
        assert np.linalg.norm(state[0] - state[1]) >= env.min_separation
        np.testing.assert_allclose(env.target, state[env.instructed], atol=1e-6)
        tasks.append(env.task)
    assert set(tasks) == set(INSTRUCTIONS) and 10 < tasks.count(INSTRUCTIONS[0]) < 30
    env.reset(seed=7)
    again = (env.task, env.targets.copy())
    env.reset(seed=7)
    assert (env.task, env.targets.tolist()) == (again[0], again[1].tolist())  # same seed, same episode


def test_expert_reaches_the_instructed_target_in_at_least_98_of_100_seeds_and_never_the_other() -> None:
    env = make_env("reach_color", render=False)
    expert = make_expert(env)
    hits = 0
    for seed in range(100):
        ok, _ = run_expert_episode(env, expert, seed, frames_after_success=0)
        hits += ok
        other = env.targets[1 - env.instructed]
        assert np.linalg.norm(env.tip - other) > env.tolerance  # at the end it is at the instructed one only
    assert hits >= 98


def test_success_is_the_instructed_target_only() -> None:
    env = make_env("reach_color", render=False, terminate_on_success=False)
    obs, _ = env.reset(seed=3)
    # reach's expert aimed at the other target: touching it must not count.
    wrong = 1 - env.instructed
    expert = ReachExpert(env)
    expert.reset({**obs, "observation.environment_state": env.targets[wrong]})
    successes = [env.step(expert.act(obs))[4]["is_success"] for _ in range(60)]
    assert not any(successes)
    assert np.linalg.norm(env.tip - env.targets[wrong]) < 0.03


def test_eval_passes_each_episodes_instruction_as_the_task() -> None:
    seen: list[list[str]] = []

    class Follower(ExpertPolicy):
        def select_action(self, obs):
            seen.append(list(obs["task"]))
            return super().select_action(obs)

    info = evaluate(Follower, "reach_color", n_episodes=6, batch_size=3, seed=0)
    expected = []
    for seed in range(6):
        env = make_env("reach_color", render=False)
        env.reset(seed=seed)
        expected.append(env.task)
    batches = [b for b in seen if len(b) == 3]
    assert expected[:3] in batches and expected[3:] in batches
    assert info["overall"]["success_rate"] >= 5 / 6
    # grouped by the env task, as lerobot-eval: one task, one group, whatever the instructions
    assert [t["task_group"] for t in info["per_task"]] == ["reach_color"] and list(info["per_group"]) == ["reach_color"]


def test_record_stores_each_episodes_instruction(tmp_path: Path) -> None:
    root = tmp_path / "reach_color"
    result = record("reach_color", root, num_episodes=4, seed=0, frames_after_success=2, log=lambda _: None)
    ds = LeRobotDataset(root)
    instructions = []
    for seed in result.seeds:
        env = make_env("reach_color", render=False)
        env.reset(seed=seed)
        instructions.append(env.task)
    table = pq.read_table(root / "meta" / "tasks.parquet").to_pandas()
    assert set(table.index if "task" not in table.columns else table["task"]) == set(instructions)
    assert ds.meta.info["total_tasks"] == len(set(instructions))
    for i, ep in enumerate(sorted(ds.meta.episodes, key=lambda e: e["episode_index"])):
        assert list(ep["tasks"]) == [instructions[i]]
        assert ds[ep["dataset_from_index"]]["task"] == instructions[i]


def test_targets_in_state_appends_both_targets_and_the_expert_still_follows(tmp_path: Path) -> None:
    env = make_env("reach_color", render=False, obs_type="targets_in_state")
    plain = make_env("reach_color", render=False)
    obs, _ = env.reset(seed=5)
    ref, _ = plain.reset(seed=5)
    assert env.observation_space["observation.state"].shape == (12,)
    np.testing.assert_allclose(obs["observation.state"][:6], ref["observation.state"])
    np.testing.assert_allclose(obs["observation.state"][6:], env.targets.reshape(-1), atol=1e-6)  # red, then blue
    assert env.task == plain.task  # the same episode: only the layout differs
    assert env.features["observation.state"]["names"][6:] == ["red_x", "red_y", "red_z", "blue_x", "blue_y", "blue_z"]
    assert env.features["action"]["shape"] == [6]
    expert = make_expert(env)
    assert sum(run_expert_episode(env, expert, seed, frames_after_success=0)[0] for seed in range(10)) >= 9
    root = tmp_path / "rc"
    record("reach_color", root, num_episodes=1, frames_after_success=1, env_kwargs={"obs_type": "targets_in_state"},
           log=lambda _: None)
    assert LeRobotDataset(root)[0]["observation.state"].shape == (12,)


def test_unknown_obs_type_is_one_clear_error() -> None:
    with pytest.raises(SimError, match=r"--env.obs_type='pixels'.*targets_in_state"):
        make_env("reach_color", render=False, obs_type="pixels")
