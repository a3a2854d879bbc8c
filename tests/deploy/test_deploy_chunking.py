"""ActionScheduler: which action each tick executes, in sync, async and temporal-ensembling modes."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch

from apprentice.deploy import ActionScheduler, DeployError


class TickEcho(torch.nn.Module):
    """A stand-in policy whose chunk encodes the observation's tick: action i = tick + i (A = 2)."""

    def __init__(self, chunk_size: int = 8) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.calls: list[int] = []

    def forward(self, obs: dict) -> torch.Tensor:
        tick = int(obs["tick"])
        self.calls.append(tick)
        steps = torch.arange(self.chunk_size, dtype=torch.float32) + tick
        return torch.stack([steps, -steps], dim=-1)


def predictor(model: torch.nn.Module, delay_s: float = 0.0, gate: threading.Event | None = None):
    def predict(obs: dict) -> np.ndarray:
        if gate is not None:
            assert gate.wait(5.0), "test gate never opened"
        if delay_s:
            time.sleep(delay_s)
        with torch.inference_mode():
            return model(obs).numpy()

    return predict


def test_sync_infers_when_queue_drains_and_executes_n_action_steps() -> None:
    model = TickEcho(chunk_size=8)
    sched = ActionScheduler(predictor(model), n_action_steps=3)
    actions = [sched.step(t, {"tick": t})[0] for t in range(7)]
    # Chunks start at ticks 0, 3, 6; each executes its first 3 actions, which are for ticks t..t+2.
    assert model.calls == [0, 3, 6]
    assert actions == [0, 1, 2, 3, 4, 5, 6]
    assert sched.stats.inferences == 3 and sched.stats.starved_ticks == 0


def test_sync_skipped_ticks_drop_their_actions_instead_of_replaying_late() -> None:
    model = TickEcho(chunk_size=10)
    sched = ActionScheduler(predictor(model), n_action_steps=10)
    assert sched.step(0, {"tick": 0})[0] == 0
    # The loop overran: ticks 1-3 never ran. Tick 4 executes the action planned for tick 4.
    assert sched.step(4, {"tick": 4})[0] == 4
    assert model.calls == [0]


def test_reset_forgets_the_queue() -> None:
    model = TickEcho()
    sched = ActionScheduler(predictor(model), n_action_steps=8)
    sched.step(0, {"tick": 0})
    sched.reset()
    assert sched.planned(1) == 0
    assert sched.step(1, {"tick": 1})[0] == 1
    assert model.calls == [0, 1]


def test_temporal_ensembling_weights_oldest_prediction_highest() -> None:
    class Const(torch.nn.Module):
        """Chunk filled with 10 * (number of calls so far): distinguishes each chunk's prediction."""

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def forward(self, obs: dict) -> torch.Tensor:
            self.n += 1
            return torch.full((5, 1), 10.0 * self.n)

    coeff = 0.5
    sched = ActionScheduler(predictor(Const()), n_action_steps=1, temporal_ensemble_coeff=coeff)
    out = [float(sched.step(t, {})[0]) for t in range(3)]
    w = [math.exp(-coeff * i) for i in range(3)]
    assert out[0] == pytest.approx(10.0)
    assert out[1] == pytest.approx((w[0] * 10 + w[1] * 20) / (w[0] + w[1]))
    assert out[2] == pytest.approx((w[0] * 10 + w[1] * 20 + w[2] * 30) / sum(w))


def test_async_infers_ahead_so_the_queue_never_starves() -> None:
    model = TickEcho(chunk_size=6)
    sched = ActionScheduler(predictor(model, delay_s=0.01), n_action_steps=6, asynchronous=True, lookahead=3)
    try:
        executed = []
        for t in range(30):
            action = sched.step(t, {"tick": t})
            if action is not None:
                executed.append((t, action[0]))
            time.sleep(0.03)  # one 33 Hz tick: longer than an inference, so results land in time
        # Only the very first chunk is waited for; after that every tick has its own action, and the
        # executed action is always the one planned for that very tick (value = tick).
        assert sched.stats.starved_ticks <= 2
        assert all(t == value for t, value in executed)
        assert len(executed) >= 28
        assert len(model.calls) >= 30 // 6
    finally:
        sched.close()


def test_async_late_chunk_drops_actions_for_ticks_already_passed() -> None:
    gate = threading.Event()
    model = TickEcho(chunk_size=10)
    sched = ActionScheduler(predictor(model, gate=gate), n_action_steps=10, asynchronous=True, lookahead=2)
    try:
        assert sched.step(0, {"tick": 0}) is None  # launched at tick 0, not ready yet
        assert sched.step(1, {"tick": 1}) is None
        gate.set()
        deadline = time.monotonic() + 5
        while sched.inference_in_flight_s and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.01)
        action = sched.step(4, {"tick": 4})
        assert action is not None and action[0] == 4  # chunk from tick 0, entry for tick 4
        assert sched.stats.discarded_actions == 4  # ticks 0-3 passed before it arrived
    finally:
        sched.close()


def test_async_result_from_before_reset_is_ignored() -> None:
    gate = threading.Event()
    model = TickEcho()
    sched = ActionScheduler(predictor(model, gate=gate), n_action_steps=8, asynchronous=True, lookahead=1)
    try:
        sched.step(0, {"tick": 0})
        sched.reset()
        gate.set()
        time.sleep(0.05)
        # The old chunk finished after reset: it must not be executed; a new inference starts instead.
        assert sched.step(1, {"tick": 1}) is None
        time.sleep(0.05)
        assert sched.step(2, {"tick": 2})[0] == 2
        assert model.calls == [0, 1]
    finally:
        sched.close()


def test_policy_failure_and_bad_output_surface_as_errors() -> None:
    def nan_chunk(obs: dict) -> np.ndarray:
        return np.full((4, 2), np.nan)

    with pytest.raises(DeployError, match="NaN"):
        ActionScheduler(nan_chunk, n_action_steps=2).step(0, {})
    with pytest.raises(DeployError, match="shape"):
        ActionScheduler(lambda obs: np.zeros(3), n_action_steps=2).step(0, {})
    with pytest.raises(DeployError, match="n_action_steps"):
        ActionScheduler(nan_chunk, n_action_steps=0)

    def boom(obs: dict) -> np.ndarray:
        raise RuntimeError("model exploded")

    sched = ActionScheduler(boom, n_action_steps=2, asynchronous=True)
    try:
        sched.step(0, {})
        time.sleep(0.05)
        with pytest.raises(RuntimeError, match="model exploded"):
            sched.step(1, {})
    finally:
        sched.close()


def test_auto_lookahead_follows_measured_inference_time() -> None:
    sched = ActionScheduler(lambda obs: np.zeros((20, 1)), n_action_steps=20, asynchronous=True, fps=30)
    try:
        sched.stats.inference_s.extend([0.1] * 20)  # 100 ms = 3 ticks at 30 Hz
        assert sched.lookahead == 4
        sched.stats.inference_s.extend([0.001] * 20)
        assert sched.lookahead == 2
    finally:
        sched.close()
