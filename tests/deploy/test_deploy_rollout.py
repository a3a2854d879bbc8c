"""Rollout strategies without ROS: human takeover (DAgger) and a watchdog that only a person re-arms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_helpers import MS, FakeClock

from apprentice.contract import load_contract
from apprentice.deploy import DeployError, SafetyLimits, Watchdog
from apprentice.deploy.rollout import Rollout
from apprentice.deploy.runtime import PolicyRuntime, RuntimeConfig
from apprentice.deploy.takeover import Takeover, TakeoverConfig
from apprentice.policies import load_policy
from apprentice.resources import config_path

torch.set_num_threads(1)


def push_all(rt: PolicyRuntime, stamp_ns: int, state: np.ndarray | None = None) -> None:
    rt.push("observation.state", stamp_ns, np.zeros(6, np.float32) if state is None else state)
    rt.push("observation.environment_state", stamp_ns, np.array([0.2, 0.0, 0.1], np.float32))
    rt.push("observation.images.top", stamp_ns, np.full((96, 128, 3), 128, np.uint8))


@pytest.fixture
def runtime(tiny_act: Path):
    contract = load_contract(config_path("contracts", "sim_reach_dagger.yaml"))
    clock = FakeClock()
    rt = PolicyRuntime(
        load_policy(tiny_act),
        contract,
        RuntimeConfig(input_timeout_s=0.2),
        SafetyLimits(names=list(contract.action.names), max_relative_step=0.1),
        clock=clock,
    )
    rt.test_clock = clock  # type: ignore[attr-defined]
    yield rt
    rt.close()


def test_takeover_starts_when_the_leader_moves_and_hands_back_only_when_asked() -> None:
    t = Takeover(TakeoverConfig(threshold_rad=0.05, max_age_s=0.1))
    assert t.request(True) == (False, "no leader arm pose received yet: nothing to drive the robot with")
    rest = np.array([0.0, 0.5, -0.5, 0.0, 0.0, 0.2])
    lift = np.array([0, 0.06, 0, 0, 0, 0])
    assert t.leader(0, rest) is None  # the first pose is where motion is measured from
    assert t.leader(10 * MS, rest + 0.04) is None and not t.active  # within the threshold: a tremor
    why = t.leader(20 * MS, rest + lift)
    assert t.active and why is not None and "0.060 rad" in why
    np.testing.assert_allclose(t.target(50 * MS), rest + lift)
    assert t.target(200 * MS) is None  # older than max_age_s: not relayed
    assert t.leader(30 * MS, rest) is None and t.active  # a still leader does not hand back by itself
    assert t.request(False) == (True, "handed back to the policy")
    assert t.leader(40 * MS, rest + 0.04) is None and not t.active  # motion counts from the hand-back pose
    assert t.leader(50 * MS, np.full(6, np.nan)) is None  # a bad read is ignored
    assert t.takeovers == 1
    off = Takeover()  # threshold 0: only explicit requests
    off.leader(0, rest)
    assert off.leader(1, rest + 1.0) is None and not off.active
    assert off.request(True)[0] and off.active
    with pytest.raises(DeployError, match="threshold must be >= 0"):
        TakeoverConfig(threshold_rad=-1)


def test_takeover_relays_the_leader_through_the_safety_filter_and_flags_it(runtime: PolicyRuntime) -> None:
    rollout = Rollout(runtime, Takeover(TakeoverConfig(threshold_rad=0.05)), follow_recorder=True)
    rest = np.zeros(6)
    rollout.on_leader(900 * MS, rest)
    assert rollout.on_takeover(True) == (False, "the recorder is not recording: nobody drives between episodes")
    rollout.on_leader(950 * MS, rest + 1.0)
    assert not rollout.takeover.active  # no takeover between episodes, however the leader moves
    rollout.on_recorder(True, 0)
    push_all(runtime, 990 * MS)
    tick = rollout.step(1000 * MS)
    assert tick.outcome.reason == "ok" and not tick.intervention  # the policy drives

    assert rollout.on_leader(1010 * MS, rest + 1.3) is not None  # the operator grabs the leader
    push_all(runtime, 1020 * MS)
    tick = rollout.step(1033 * MS)
    assert tick.intervention and tick.outcome.reason == "takeover"
    # The leader is 0.3 rad from the measured (zero) pose: the relative clamp bounds the jump to 0.1.
    np.testing.assert_allclose(tick.outcome.command, np.full(6, 0.1))
    inferences = runtime.scheduler.stats.inferences
    push_all(runtime, 1050 * MS, state=np.full(6, 0.1, np.float32))
    tick = rollout.step(1066 * MS)
    np.testing.assert_allclose(tick.outcome.command, np.full(6, 0.2))
    assert runtime.scheduler.stats.inferences == inferences  # the policy is not run while a person drives
    tick = rollout.step(1300 * MS)  # leader silent: hold, still flagged (the person has the arm)
    assert tick.outcome.command is None and tick.intervention and "no fresh leader" in tick.outcome.reason

    assert rollout.on_takeover(False) == (True, "handed back to the policy")
    push_all(runtime, 1320 * MS)
    tick = rollout.step(1333 * MS)
    assert tick.outcome.reason == "ok" and not tick.intervention  # a fresh plan: the watchdog did not trip
    assert runtime.scheduler.stats.inferences == inferences + 1
    rollout.on_leader(1340 * MS, rest + 2.0)
    assert rollout.takeover.active
    rollout.on_recorder(False, 0)  # the episode ends: so does its takeover, and nobody drives
    assert not rollout.takeover.active and rollout.step(1366 * MS).outcome.reason == "disabled"


def test_a_new_episode_does_not_rearm_a_tripped_watchdog(runtime: PolicyRuntime) -> None:
    clock = runtime.test_clock  # type: ignore[attr-defined]
    rollout = Rollout(runtime, Takeover(), follow_recorder=True)
    rollout.on_recorder(True, 0)
    push_all(runtime, 990 * MS)
    assert rollout.step(1000 * MS).outcome.command is not None
    clock.ns += 300 * MS  # the camera died: inputs stall past input_timeout_s
    assert rollout.step(1300 * MS).outcome.reason.startswith("watchdog: inputs stalled")
    fault = runtime.fault
    assert fault.startswith("inputs stalled")
    rollout.on_recorder(False, 0)
    line = rollout.on_recorder(True, 1)  # the recorder's next episode
    assert line is not None and "watchdog still tripped" in line
    push_all(runtime, 1330 * MS)
    clock.ns += 40 * MS
    tick = rollout.step(1340 * MS)
    assert tick.outcome.command is None and tick.outcome.reason.startswith("watchdog: inputs stalled")
    assert runtime.fault == fault
    rollout.on_recorder(False, 1)
    assert rollout.on_enable(True) == "re-armed; drives when the recorder's next episode starts"
    assert runtime.fault == "" and rollout.step(1350 * MS).outcome.reason == "disabled"
    rollout.on_recorder(True, 2)
    push_all(runtime, 1360 * MS)
    assert rollout.step(1366 * MS).outcome.reason == "ok"
    assert rollout.on_enable(False) == "disabled"  # the operator switched it off: it stays off ...
    rollout.on_recorder(False, 2)
    assert "disabled by the operator" in (rollout.on_recorder(True, 3) or "")  # ... across episodes
    assert rollout.step(1400 * MS).outcome.reason == "disabled"


def test_a_second_commander_holds_the_arm(runtime: PolicyRuntime) -> None:
    rollout = Rollout(runtime, Takeover(), follow_recorder=True)
    rollout.on_recorder(True, 0)
    rollout.conflict = "1 other publisher(s) on forward_position_controller/commands"
    push_all(runtime, 990 * MS)
    tick = rollout.step(1000 * MS)
    assert tick.outcome.command is None and tick.outcome.reason.startswith("conflict: 1 other publisher")
    rollout.conflict = ""
    assert rollout.step(1010 * MS).outcome.command is not None


def test_watchdog_resume_restarts_timers_but_keeps_the_trip() -> None:
    wd = Watchdog({"inputs": 0.1})
    wd.rearm(0)
    assert wd.check(200 * MS) is not None
    wd.resume(200 * MS)
    assert wd.check(210 * MS) is not None  # latched
    wd.rearm(210 * MS)
    assert wd.check(250 * MS) is None
    wd.resume(250 * MS)
    assert wd.check(340 * MS) is None and wd.check(360 * MS) is not None  # timers restarted at 250 ms


def test_warmup_runs_the_model_once_and_leaves_no_plan(runtime: PolicyRuntime) -> None:
    assert runtime.warmup() > 0
    assert runtime.scheduler.stats.inferences == 0  # the scheduler never saw it: nothing is queued
    runtime.enable(True)
    push_all(runtime, 990 * MS)
    assert runtime.step(1000 * MS).reason == "ok" and runtime.scheduler.stats.inferences == 1
