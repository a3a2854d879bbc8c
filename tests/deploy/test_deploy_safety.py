"""Safety filter, watchdog, latency/jitter statistics and the evaluation book."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apprentice.deploy import (
    DeployError,
    EvalBook,
    LatencyStats,
    LoopTimer,
    SafetyFilter,
    SafetyLimits,
    Watchdog,
)

NAMES = ["a", "b", "c"]


def test_relative_clamp_then_joint_limits() -> None:
    f = SafetyFilter(SafetyLimits(NAMES, max_relative_step=0.1, lower=[-1, -1, -1], upper=[1, 1, 0.5]))
    out, report = f.apply(np.array([0.5, 0.05, 0.9]), measured=np.array([0.0, 0.0, 0.8]))
    # a: 0.5 -> 0.1 (step); b untouched; c: 0.9 within step of 0.8 but above its 0.5 limit.
    assert out == pytest.approx([0.1, 0.05, 0.5])
    assert report.relative_clamped == ["a"] and report.limit_clamped == ["c"]
    assert f.clamp_counts == {"a": 1, "b": 0, "c": 1}


def test_no_measurement_skips_relative_clamp_but_keeps_limits() -> None:
    f = SafetyFilter(SafetyLimits(NAMES, max_relative_step=0.1, lower=-1.0, upper=1.0))
    out, report = f.apply(np.array([0.5, 2.0, -3.0]), measured=None)
    assert out == pytest.approx([0.5, 1.0, -1.0])
    assert report.relative_clamped == []


def test_unlimited_filter_passes_commands_through() -> None:
    out, report = SafetyFilter(SafetyLimits(NAMES)).apply(np.array([9.0, -9.0, 0.0]), np.zeros(3))
    assert out == pytest.approx([9.0, -9.0, 0.0]) and not report.clamped


def test_bad_limits_are_rejected_with_the_joint_named() -> None:
    with pytest.raises(DeployError, match="lower > upper for b"):
        SafetyLimits(NAMES, lower=[0, 1, 0], upper=[1, 0, 1])
    with pytest.raises(DeployError, match="2 values but the action has 3 joints"):
        SafetyLimits(NAMES, upper=[1, 1])
    with pytest.raises(DeployError, match="> 0"):
        SafetyLimits(NAMES, max_relative_step=0.0)
    with pytest.raises(DeployError, match="no limits for joint\\(s\\) c"):
        SafetyLimits.from_joint_table(NAMES, {"a": (-1, 1), "b": (-1, 1)})
    with pytest.raises(DeployError, match="shape"):
        SafetyFilter(SafetyLimits(NAMES)).apply(np.zeros(2), None)


def test_limits_from_a_joint_table_follow_the_action_order() -> None:
    limits = SafetyLimits.from_joint_table(["b", "a"], {"a": (-1, 1), "b": (-2, 2)}, max_relative_step=0.2)
    assert limits.lower == [-2.0, -1.0] and limits.upper == [2.0, 1.0]


def test_watchdog_trips_on_the_silent_source_and_latches_until_rearmed() -> None:
    ms = 1_000_000
    wd = Watchdog({"inputs": 0.1, "actions": 0.5})
    assert wd.check(0) is None  # nothing armed yet
    wd.rearm(0)
    wd.feed("inputs", 80 * ms)
    assert wd.check(150 * ms) is None
    trip = wd.check(200 * ms)
    assert trip is not None and trip.source == "inputs" and "inputs stalled" in str(trip)
    wd.feed("inputs", 210 * ms)  # fresh data does not un-trip by itself
    assert wd.check(220 * ms) is trip
    wd.rearm(300 * ms)
    assert wd.check(350 * ms) is None and wd.trips == 1
    with pytest.raises(DeployError, match="unknown watchdog source"):
        wd.feed("camera", 0)
    with pytest.raises(DeployError, match="> 0"):
        Watchdog({"inputs": 0})


def test_latency_stats_percentiles() -> None:
    stats = LatencyStats(window=100)
    assert stats.summary() == {}
    for i in range(1, 101):
        stats.add(i * 1e-3)
    s = stats.summary()
    assert s["p50_ms"] == pytest.approx(50.5) and s["max_ms"] == pytest.approx(100)
    assert s["p99_ms"] == pytest.approx(99.01)


def test_loop_timer_jitter_and_overruns() -> None:
    loop = LoopTimer(fps=10)  # 100 ms period
    ms = 1_000_000
    for t in (0, 100, 205, 300, 500):
        loop.tick(t * ms)
    s = loop.summary()
    assert s["overruns"] == 1  # the 200 ms gap
    assert s["jitter_max_ms"] == pytest.approx(100)
    loop.restart()
    assert loop.tick(10_000 * ms) is None


def test_eval_book_success_is_sticky_and_written_atomically(tmp_path) -> None:
    book = EvalBook()
    book.start(seed=7)
    book.record_tick(True)
    book.record_success(True, 1.5)
    book.record_success(False, 1.6)  # success within an episode does not un-happen
    book.record_tick(False)
    first = book.end(3.0)
    assert first.success and first.first_success_s == 1.5 and first.steps == 1 and first.held_ticks == 1
    book.start(seed=8)
    book.end(3.0)
    with pytest.raises(DeployError, match="no evaluation episode"):
        book.end(1.0)
    assert book.success_rate == 0.5
    path = book.write(tmp_path / "eval" / "eval_info.json", extra={"policy": "x"})
    data = json.loads(path.read_text())
    # LeRobot's eval_info layout; on a robot the reward is the success signal
    assert data["overall"]["pc_success"] == 50.0 and data["policy"] == "x"
    assert data["overall"]["avg_max_reward"] == 0.5 and data["per_group"]["robot"]["n_episodes"] == 2
    metrics = data["per_task"][0]["metrics"]
    assert metrics["seeds"] == [7, 8] and metrics["successes"] == [True, False]
    assert metrics["durations_s"] == [3.0, 3.0] and metrics["first_success_s"] == [1.5, None]
    assert metrics["lengths"] == [1, 0] and metrics["held_ticks"] == [1, 0]
    assert not list(path.parent.glob(".*"))  # no temporary file left behind
