"""PolicyRuntime with a real contract (config/contracts/sim_reach.yaml) and a real (tiny, untrained) ACT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_helpers import MS, FakeClock

from apprentice.contract import load_contract
from apprentice.deploy import DeployError, SafetyLimits
from apprentice.deploy.runtime import PolicyRuntime, RuntimeConfig
from apprentice.policies import load_policy
from apprentice.resources import config_path

torch.set_num_threads(1)


def push_all(rt: PolicyRuntime, stamp_ns: int, state: np.ndarray | None = None, image: bool = True) -> None:
    rt.push("observation.state", stamp_ns, np.zeros(6, np.float32) if state is None else state)
    rt.push("observation.environment_state", stamp_ns, np.array([0.2, 0.0, 0.1], np.float32))
    if image:
        rt.push("observation.images.top", stamp_ns, np.full((96, 128, 3), 128, np.uint8))


@pytest.fixture
def contract():
    return load_contract(config_path("contracts", "sim_reach.yaml"))


@pytest.fixture
def policy(tiny_act: Path):
    return load_policy(tiny_act)


def test_step_commands_the_policy_action_in_joint_order(policy, contract) -> None:
    clock = FakeClock()
    rt = PolicyRuntime(policy, contract, RuntimeConfig(), clock=clock)
    assert rt.step(1000 * MS).reason == "disabled"
    rt.enable(True)
    push_all(rt, 990 * MS)
    outcome = rt.step(1000 * MS)
    assert outcome.reason == "ok" and outcome.command.shape == (6,)
    assert outcome.obs_stamp_ns == 990 * MS
    # The same observation through the bare policy gives the same first action (sync mode = select_action).
    policy.reset()
    sample = {
        "observation.state": np.zeros(6, np.float32),
        "observation.environment_state": np.array([0.2, 0.0, 0.1], np.float32),
        "observation.images.top": np.full((96, 128, 3), 128, np.uint8),
    }
    expected = policy.select_action(rt.build_observation(sample))[0].numpy()
    assert outcome.command == pytest.approx(expected, abs=1e-5)
    rt.record_publish(outcome, 1005 * MS)
    assert rt.diagnostics()["obs_to_command_p50_ms"] == pytest.approx(15.0)
    # Chunking: the next n_action_steps - 1 ticks come from the queue, then one new inference.
    for i in range(1, 6):
        push_all(rt, (990 + 33 * i) * MS)
        assert rt.step((1000 + 33 * i) * MS).command is not None
    assert rt.scheduler.stats.inferences == 2


def test_latency_counts_from_the_sampled_inputs_even_when_newer_ones_arrived(policy, contract) -> None:
    rt = PolicyRuntime(policy, contract, RuntimeConfig(), clock=FakeClock())
    rt.enable(True)
    push_all(rt, 980 * MS)
    push_all(rt, 1010 * MS)  # stamped after the tick: not used for it, so not its latency origin
    outcome = rt.step(1000 * MS)
    assert outcome.reason == "ok" and outcome.obs_stamp_ns == 980 * MS
    rt.record_publish(outcome, 1002 * MS)
    assert rt.diagnostics()["obs_to_command_p50_ms"] == pytest.approx(22.0)
    rt.close()


def test_stale_or_missing_input_holds_without_replaying_held_ticks(policy, contract) -> None:
    rt = PolicyRuntime(policy, contract, clock=FakeClock())
    rt.enable(True)
    push_all(rt, 990 * MS, image=False)
    outcome = rt.step(1000 * MS)
    assert outcome.command is None and outcome.reason == "stale: observation.images.top"
    push_all(rt, 1000 * MS)
    assert rt.step(1010 * MS).command is not None  # tick 0 infers: ticks 0-4 are planned
    # The camera stops: at 1110 ms its last frame is older than max_age (0.1 s) -> hold.
    rt.push("observation.state", 1105 * MS, np.zeros(6, np.float32))
    outcome = rt.step(1110 * MS)
    assert outcome.command is None and "observation.images.top" in outcome.reason
    assert rt.diagnostics()["hold_stale"] == 2.0
    # Fresh again at tick 4: it executes the action planned for tick 4, not the ones held meanwhile.
    push_all(rt, 1130 * MS)
    inferences = rt.scheduler.stats.inferences
    expected = rt.scheduler._slots[rt_tick(rt, 1133)].value()
    assert rt.step(1133 * MS).command == pytest.approx(expected)
    assert rt.scheduler.stats.inferences == inferences


def rt_tick(rt: PolicyRuntime, ms: int) -> int:
    """The scheduler's tick index for ROS time `ms`: ticks count from the first one after enable."""
    return round((ms * MS - rt._tick_origin_ns) * rt.fps * 1e-9)


def test_relative_step_clamp_and_joint_limits(policy, contract) -> None:
    limits = SafetyLimits(contract.action.names, max_relative_step=0.01, lower=-0.5, upper=0.5)
    rt = PolicyRuntime(policy, contract, safety=limits, clock=FakeClock())
    rt.enable(True)
    state = np.array([0.3, -0.2, 0.1, 0.0, 0.2, 0.495], np.float32)
    push_all(rt, 990 * MS, state=state)
    outcome = rt.step(1000 * MS)
    assert outcome.command is not None
    assert np.all(np.abs(outcome.command - state) <= 0.01 + 1e-6)
    assert np.all(outcome.command <= 0.5)


def test_watchdog_latches_after_inputs_stall_until_reenabled(policy, contract) -> None:
    clock = FakeClock()
    rt = PolicyRuntime(policy, contract, RuntimeConfig(input_timeout_s=0.2), clock=clock)
    rt.enable(True)
    push_all(rt, 990 * MS)
    assert rt.step(1000 * MS).command is not None
    clock.ns += 300 * MS  # 300 ms without a fresh observation (every tick was stale)
    outcome = rt.step(1300 * MS)
    assert outcome.command is None and outcome.reason.startswith("watchdog: inputs stalled")
    push_all(rt, 1330 * MS)
    clock.ns += 40 * MS
    outcome = rt.step(1340 * MS)  # fresh data alone does not resume
    assert outcome.command is None and outcome.reason.startswith("watchdog: inputs stalled")
    rt.enable(True)
    assert rt.step(1345 * MS).command is not None


def test_slow_inference_result_is_not_commanded(contract, tiny_act: Path) -> None:
    clock = FakeClock()
    policy = load_policy(tiny_act)
    real = policy.predict_action_chunk

    def slow(obs):
        clock.ns += 2000 * MS  # the model "takes" 2 s
        return real(obs)

    policy.predict_action_chunk = slow
    rt = PolicyRuntime(policy, contract, RuntimeConfig(action_timeout_s=1.0), clock=clock)
    rt.enable(True)
    push_all(rt, 990 * MS)
    outcome = rt.step(1000 * MS)
    assert outcome.command is None and outcome.reason.startswith("watchdog: actions stalled")


@pytest.mark.parametrize("mode", ["policy", "ensemble", "async"])
def test_other_modes_produce_commands(policy, contract, mode: str) -> None:
    rt = PolicyRuntime(policy, contract, RuntimeConfig(mode=mode, lookahead=2), clock=FakeClock())
    rt.enable(True)
    commands = 0
    for i in range(40):
        push_all(rt, (990 + 33 * i) * MS)
        commands += rt.step((1000 + 33 * i) * MS).command is not None
        if mode == "async":
            import time

            time.sleep(1 / 30)  # real time: ticks are 33 ms apart
    # async: the first chunk is waited for, and a loaded CI machine may starve a few more ticks
    assert commands >= (20 if mode == "async" else 40)
    rt.close()


def test_contract_that_lacks_a_policy_input_is_rejected(policy) -> None:
    other = load_contract(config_path("contracts", "so101_two_cameras.yaml"))
    with pytest.raises(DeployError, match=r"observation\.environment_state.*contract"):
        PolicyRuntime(policy, other)
    with pytest.raises(DeployError, match="unknown mode"):
        RuntimeConfig(mode="fast")


def test_timer_jitter_near_half_a_period_neither_repeats_nor_skips_actions(policy, contract) -> None:
    """A timer whose phase sits ~half a tick off the fps grid, firing 0-2 ms late: every callback runs
    the next planned action (one inference per n_action_steps ticks), none held."""
    rt = PolicyRuntime(policy, contract, clock=FakeClock())
    rt.enable(True)
    period_ms = 1000 / rt.fps
    rng = np.random.default_rng(0)
    holds = 0
    for k in range(60):
        tick_ms = 1000 + (k + 0.47) * period_ms + rng.uniform(0, 2)
        push_all(rt, round((tick_ms - 1) * MS))
        holds += rt.step(round(tick_ms * MS)).command is None
    n_steps = int(policy.config.n_action_steps)
    assert holds == 0
    assert rt.scheduler.stats.inferences == -(-60 // n_steps)
    rt.close()


def test_non_finite_state_holds_and_non_finite_or_failing_policy_latches(policy, contract) -> None:
    clock = FakeClock()
    rt = PolicyRuntime(policy, contract, clock=clock)
    rt.enable(True)
    # A state interface not yet written (NaN, as ros2_control starts): hold, no exception, no latch.
    push_all(rt, 990 * MS, state=np.full(6, np.nan, np.float32))
    outcome = rt.step(1000 * MS)
    assert outcome.command is None and outcome.reason == "stale: observation.state is not finite"
    push_all(rt, 1020 * MS)
    assert rt.step(1033 * MS).command is not None

    # The model starts failing: the step does not raise; the watchdog latches until enable.
    def broken(observation):
        raise RuntimeError("CUDA error: device-side assert triggered")

    rt.scheduler._predict = broken
    rt.reset()
    push_all(rt, 1060 * MS)
    outcome = rt.step(1066 * MS)
    assert outcome.command is None and "fault: RuntimeError: CUDA error" in outcome.reason
    push_all(rt, 1090 * MS)
    assert "fault" in rt.step(1100 * MS).reason  # latched: fresh data alone does not resume
    assert rt.diagnostics()["watchdog_trips"] == 1.0


def test_safety_filter_refuses_non_finite_values(contract) -> None:
    from apprentice.deploy import SafetyFilter

    safety = SafetyFilter(SafetyLimits(contract.action.names, max_relative_step=0.1))
    with pytest.raises(DeployError, match="non-finite measured"):
        safety.apply(np.zeros(6), np.array([np.nan, 0, 0, 0, 0, 0]))
    with pytest.raises(DeployError, match="non-finite command"):
        safety.apply(np.array([0, np.inf, 0, 0, 0, 0]), np.zeros(6))


def test_policy_mode_hold_drops_the_policy_queue(policy, contract) -> None:
    rt = PolicyRuntime(policy, contract, RuntimeConfig(mode="policy"), clock=FakeClock())
    rt.enable(True)
    push_all(rt, 990 * MS)
    assert rt.step(1000 * MS).command is not None
    assert len(policy._action_queue) > 0  # ACT's own action queue holds the rest of the chunk
    rt.push("observation.state", 1150 * MS, np.zeros(6, np.float32))  # the camera went quiet
    assert rt.step(1150 * MS).command is None
    assert len(policy._action_queue) == 0  # resumes with a fresh inference, not the held ticks' actions


def test_history_stays_bounded_while_disabled(policy, contract) -> None:
    rt = PolicyRuntime(policy, contract, clock=FakeClock())
    for i in range(300):
        push_all(rt, (1000 + 33 * i) * MS)
        assert rt.step((1000 + 33 * i) * MS).command is None  # disabled
    assert max(len(v) for v in rt.sampler._values.values()) <= 64
