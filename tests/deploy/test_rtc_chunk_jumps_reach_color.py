"""benchmarks/rtc_chunk_jumps.py on reach_color: every inference gets its episode's instruction, as the node's
task topic delivers it, so a policy that does what it is told follows each episode's color."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from apprentice.deploy.runtime import OBS_STAMP
from apprentice.sim import make_env
from apprentice.sim.reach import ReachExpert
from apprentice.sim.reach_color import COLORS

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
CHUNK = 12


class ToldFlowPolicy:
    """A flow-matching-shaped policy (predict_action_chunk takes `rtc`) that reaches for the target its
    instruction names, read from observation.state (targets_in_state: joints, red xyz, blue xyz); it records
    the instruction and the targets of every inference."""

    def __init__(self) -> None:
        env = make_env("reach_color", render=False)
        self.ik = ReachExpert(SimpleNamespace(model=env.model, fps=30), duration_s=1 / 30)  # act() = the goal
        self.config = SimpleNamespace(type="told_flow", n_action_steps=8, chunk_size=CHUNK)
        self.device = torch.device("cpu")
        self.calls: list[tuple[str, np.ndarray, bool]] = []  # (instruction, both targets, guided)

    def predict_action_chunk(self, obs: dict, noise: torch.Tensor | None = None, rtc: object = None) -> torch.Tensor:
        state = obs["observation.state"][0].double().numpy()
        task = obs["task"][0]
        if OBS_STAMP in obs:  # not the runtime's warm-up on a blank observation
            self.calls.append((task, state[6:].copy(), rtc is not None))
        color = next((i for i, c in enumerate(COLORS) if c in task), 0)
        target = state[6 + 3 * color : 9 + 3 * color]
        self.ik.reset({"observation.state": state[:6], "observation.environment_state": target})
        goal = torch.from_numpy(self.ik.act())
        return goal.repeat(CHUNK, 1)[None]

    def reset(self) -> None:
        pass


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("rtc_chunk_jumps")


def test_each_episode_instruction_reaches_the_policy_and_it_follows_it(bench) -> None:
    args = argparse.Namespace(env_type="reach_color", obs_type="targets_in_state", episodes=4, max_episode_steps=45,
                              delay_s=0.0, n_action_steps=8, execution_horizon=6)
    # The episodes' own instructions and targets, as the benchmark seeds them (100000 + episode; -1 warms up).
    env = make_env("reach_color", render=False, obs_type="targets_in_state")
    episodes = []
    for seed in range(99_999, 100_000 + args.episodes):
        env.reset(seed=seed)
        episodes.append((env.task, env.targets.reshape(-1)))
    tasks_measured = {task for task, _ in episodes[1:]}
    assert len(tasks_measured) == 2, "the seeds must draw both instructions for this test to mean anything"

    policy = ToldFlowPolicy()
    result = bench.run(policy, True, args)

    assert policy.calls and any(guided for *_, guided in policy.calls)
    for task, targets, _ in policy.calls:
        match = [t for t, tg in episodes if np.allclose(tg, targets, atol=1e-5)]
        assert match == [task], f"an inference on episode {match} targets got the instruction {task!r}"
    assert {task for task, *_ in policy.calls} == {task for task, _ in episodes}
    assert result["inferences_measured"] > 0
    assert result["inferences_with_the_episode_instruction"] == result["inferences_measured"]
    assert set(result["follow_rate_by_instruction"]) == tasks_measured
    assert result["success_rate"] == 1.0 and set(result["follow_rate_by_instruction"].values()) == {1.0}
    assert result["boundaries"] > 0 and result["ticks"] == args.episodes * args.max_episode_steps


def test_reach_color_contract_carries_the_env_state_and_refuses_a_policy_of_another_state_size(bench) -> None:
    env = make_env("reach_color", render=False, obs_type="targets_in_state")
    contract = bench.sim_contract("reach_color", env)
    assert contract.spec("observation.state").names == list(env.state_names) and len(env.state_names) == 12
    assert contract.spec("observation.environment_state").shape == [6]
    assert contract.task == env.task
    policy = ToldFlowPolicy()
    policy.config.input_features = {"observation.state": SimpleNamespace(shape=(6,))}
    args = argparse.Namespace(env_type="reach_color", obs_type="targets_in_state", episodes=1, max_episode_steps=5,
                              delay_s=0.0, n_action_steps=8, execution_horizon=6)
    with pytest.raises(SystemExit, match=r"observation.state of 6 values.*--env.obs_type=targets_in_state gives 12"):
        bench.run(policy, False, args)
