"""The benchmark's knobs of the in-process HIL-SERL loop: a wall budget stops training early and still
scores the final eval, evaluations run in worker processes with the same seeded results as in-process
ones, and `checkpoints=false` writes no checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gym_hil")

from apprentice.rl import hilserl
from apprentice.rl.eval_pool import EvalPool
from apprentice.rl.hilserl import HILSerlConfig, read_log, train_hilserl
from apprentice.rl.replay import ReplayError

TINY = {"latent_dim": 16, "actor_network_kwargs": {"hidden_dims": [32, 32]},
        "critic_network_kwargs": {"hidden_dims": [32, 32]},
        "discrete_critic_network_kwargs": {"hidden_dims": [32, 32]}, "online_step_before_learning": 10}


def tiny(out: Path, **fields: object) -> HILSerlConfig:
    base = {"output_dir": str(out), "num_demos": 1, "max_episode_steps": 10, "online_steps": 60,
            "batch_size": 8, "eval_freq": 20, "eval_episodes": 1, "save_freq": 10, "policy": TINY}
    return HILSerlConfig(**{**base, **fields})


def test_budget_stops_training_and_the_final_eval_still_runs(tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "run", budget_s=1e-3, final_eval_episodes=2, checkpoints=False)
    train_hilserl(cfg)
    episodes = read_log(cfg.output_dir, "episodes")
    evals = read_log(cfg.output_dir, "eval")
    assert len(episodes) == 0  # the budget was spent on setup (demos) before the first episode
    assert [e["episodes"] for e in evals] == [2]  # only the final eval, with its own episode count
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert read_log(cfg.output_dir, "throughput")[0]["env_steps"] == 0


def test_without_budget_training_runs_to_online_steps_and_checkpoints(tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "run", online_steps=30, eval_freq=10_000)
    train_hilserl(cfg)
    assert read_log(cfg.output_dir, "episodes")[-1]["env_step"] == 30
    assert (tmp_path / "run" / "checkpoints" / "last").exists()


def test_pool_evaluation_matches_in_process_evaluation(tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "run", online_steps=20, eval_freq=10_000, checkpoints=False)
    env = hilserl.make_hil_env(cfg)
    demos, _ = hilserl.scripted_demos(env, 1, first_seed=10_000)
    algo = hilserl._new_algorithm(cfg, env, demos)
    seeds = list(range(hilserl.EVAL_SEED, hilserl.EVAL_SEED + 3))
    local = [hilserl.run_episode(env, s, act=algo.select_action)[2] for s in seeds]
    env.close()
    import functools

    pool = EvalPool(functools.partial(hilserl.make_hil_env, cfg), 2)
    try:
        pending = pool.submit(algo.policy, seeds, env_step=7, wall_s=1.5)
        rate = pending.success_rate()  # waits for the workers
        per_episode = pending.episodes_stats()
    finally:
        pool.close()
    assert algo.policy.training  # the learner's copy is untouched by the snapshot
    assert (pending.env_step, pending.episodes) == (7, 3)
    assert rate == sum(s["success"] for s in local) / 3
    assert per_episode == [{k: s[k] for k in ("success", "length", "sum_reward")} for s in local]


def test_eval_workers_log_every_point_in_order(tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "run", eval_workers=1, eval_freq=20, final_eval_episodes=2, checkpoints=False)
    train_hilserl(cfg)
    evals = read_log(cfg.output_dir, "eval")
    steps = [e["env_step"] for e in evals]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 60
    assert evals[-1]["episodes"] == 2 and all(e["episodes"] == 1 for e in evals[:-1])


@pytest.mark.parametrize("field", ["budget_s", "eval_workers", "final_eval_episodes"])
def test_negative_knobs_are_clear_errors(tmp_path: Path, field: str) -> None:
    with pytest.raises(ReplayError, match=f"--{field}"):
        tiny(tmp_path, **{field: -1})
