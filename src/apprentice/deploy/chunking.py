"""Action chunk scheduling: when to run inference and which action each control tick executes.

A policy predicts a chunk of future actions from one observation. Every chunk is tagged with the
tick its observation was taken at, so action ``i`` of the chunk belongs to tick ``launch + i`` —
whether the chunk arrives at once (synchronous inference) or some ticks later (asynchronous
inference on a worker thread). Actions for ticks that have already passed are dropped, never
replayed late. Three ways to fill the queue:

- synchronous (LeRobot's `select_action`): infer inline when the queue drains, execute the first
  ``n_action_steps`` actions of the chunk;
- asynchronous: start inference on a worker thread while ``lookahead`` actions are still queued, so
  the robot never waits for the model; the new chunk replaces the overlapping tail of the old one.
  With ``rtc`` (real-time chunking, for flow-matching policies) each inference is also given the
  previous chunk's actions from its launch tick on and the expected inference delay in ticks, so the
  policy can denoise the new chunk as a continuation of them (`apprentice.policies.rtc`); the new
  chunk then replaces the queue from the tick it arrives at, as lerobot's RTC action queue does;
- temporal ensembling (ACT): infer every tick and execute, for each tick, the exponentially weighted
  mean of every chunk's prediction for it, ``w_i = exp(-coeff * i)`` with ``i = 0`` the oldest.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apprentice.deploy import DeployError

Predict = Callable[..., np.ndarray]  # observation[, ChunkPrefix] -> (chunk_size, action_dim) array


@dataclass
class ChunkPrefix:
    """What an RTC inference is told: the planned actions from its launch tick on (raw units, the last
    chunk's, executed or not yet) and how many of them the robot executes before the new chunk arrives."""

    actions: np.ndarray  # (T_left, action_dim)
    inference_delay: int  # control ticks


@dataclass
class _Slot:
    """The action planned for one tick: a weighted sum so ensembling and replacement share a path."""

    total: np.ndarray
    weight: float
    count: int = 1

    def value(self) -> np.ndarray:
        return self.total / self.weight


@dataclass
class SchedulerStats:
    inferences: int = 0
    starved_ticks: int = 0  # ticks with no planned action (the robot had to wait)
    discarded_actions: int = 0  # actions that arrived after their tick had passed
    discarded_chunks: int = 0  # results ignored because the scheduler was reset meanwhile
    inference_s: list[float] = field(default_factory=list)
    delay_ticks: list[int] = field(default_factory=list)  # async: ticks from launch to merge, per chunk


class ActionScheduler:
    """Turns a chunk-predicting function into one action per control tick."""

    def __init__(
        self,
        predict: Predict,
        n_action_steps: int,
        *,
        asynchronous: bool = False,
        temporal_ensemble_coeff: float | None = None,
        lookahead: int | None = None,
        fps: float = 30.0,
        rtc: bool = False,
        inference_delay: int | None = None,
    ) -> None:
        if n_action_steps < 1:
            raise DeployError(f"n_action_steps must be >= 1, got {n_action_steps}")
        if lookahead is not None and lookahead < 0:
            raise DeployError(f"lookahead must be >= 0 ticks, got {lookahead}")
        if rtc and not asynchronous:
            raise DeployError("rtc needs mode=async: with synchronous inference no action runs during inference")
        if inference_delay is not None and inference_delay < 0:
            raise DeployError(f"rtc inference_delay must be >= 0 ticks, got {inference_delay}")
        self._predict = predict
        self.n_action_steps = n_action_steps
        self.asynchronous = asynchronous
        self.temporal_ensemble_coeff = temporal_ensemble_coeff
        self._lookahead = lookahead
        self.fps = fps
        self.rtc = rtc
        self._inference_delay = inference_delay
        self._last_chunk: tuple[int, np.ndarray] | None = None  # (launch tick, whole chunk) of the last merge
        self._slots: dict[int, _Slot] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by reset(): results of older generations are ignored
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-inference") if asynchronous else None
        self._pending: Future[tuple[int, int, np.ndarray, float]] | None = None
        self._pending_since: float | None = None
        self.stats = SchedulerStats()

    # -- queue inspection ---------------------------------------------------------------------------
    def planned(self, tick: int) -> int:
        """How many consecutive ticks from ``tick`` on already have an action planned."""
        with self._lock:
            n = 0
            while tick + n in self._slots:
                n += 1
            return n

    @property
    def inference_in_flight_s(self) -> float:
        """Seconds the current asynchronous inference has been running (0 when none)."""
        since = self._pending_since
        return 0.0 if since is None else time.monotonic() - since

    @property
    def lookahead(self) -> int:
        """Ticks of queued actions below which the next asynchronous inference starts.

        Unless fixed, it follows the measured inference time (p90 of the last 20, in ticks) plus one
        tick of margin, so a slow model starts earlier and a fast one keeps chunks fresher.
        """
        if self._lookahead is not None:
            return self._lookahead
        recent = self.stats.inference_s[-20:]
        if not recent:
            return max(1, self.n_action_steps // 2)
        p90 = float(np.percentile(recent, 90))
        return min(self.n_action_steps, math.ceil(p90 * self.fps) + 1)

    @property
    def inference_delay(self) -> int:
        """Ticks an inference is expected to take (RTC's committed prefix): fixed, or the largest of the
        last 10 measured launch-to-merge delays, as lerobot's latency tracker (0 before any)."""
        if self._inference_delay is not None:
            return self._inference_delay
        recent = self.stats.delay_ticks[-10:]
        return max(recent) if recent else 0

    def prefix(self, tick: int) -> ChunkPrefix | None:
        """The RTC prefix for an inference launched at ``tick`` (None when no chunk is planned past it)."""
        if self._last_chunk is None:
            return None
        launch, chunk = self._last_chunk
        left = chunk[max(0, tick - launch) :]
        return ChunkPrefix(left.copy(), self.inference_delay) if len(left) else None

    # -- the per-tick entry point -----------------------------------------------------------------
    def step(self, tick: int, observation: Any) -> np.ndarray | None:
        """The action for ``tick`` (None when none is ready: the caller holds position)."""
        self._collect(tick)
        if self._wants_inference(tick):
            if self.asynchronous:
                self._launch(tick, observation)
            else:
                started = time.monotonic()
                chunk = self._checked(self._predict(observation))
                self._record_inference(time.monotonic() - started)
                self._merge(tick, chunk, tick)
        with self._lock:
            for old in [t for t in self._slots if t < tick]:
                del self._slots[old]
            slot = self._slots.pop(tick, None)
        if slot is None:
            self.stats.starved_ticks += 1
            return None
        return slot.value()

    def reset(self) -> None:
        """Forget every planned action and any inference in flight (new episode, watchdog trip)."""
        with self._lock:
            self._slots.clear()
            self._generation += 1
            self._last_chunk = None
        self._pending = None
        self._pending_since = None

    def close(self) -> None:
        self.reset()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- internals ----------------------------------------------------------------------------------
    def _wants_inference(self, tick: int) -> bool:
        if self._pending is not None:
            return False
        if self.temporal_ensemble_coeff is not None:
            return True
        threshold = self.lookahead if self.asynchronous else 1
        return self.planned(tick) < max(1, threshold)

    def _launch(self, tick: int, observation: Any) -> None:
        assert self._pool is not None
        generation = self._generation
        prefix = self.prefix(tick) if self.rtc else None

        def work() -> tuple[int, int, np.ndarray, float]:
            started = time.monotonic()
            chunk = self._predict(observation) if prefix is None else self._predict(observation, prefix)
            return generation, tick, chunk, time.monotonic() - started

        self._pending_since = time.monotonic()
        self._pending = self._pool.submit(work)

    def _collect(self, now_tick: int) -> None:
        """Merge a finished asynchronous chunk; re-raise the policy's exception if it failed."""
        pending = self._pending
        if pending is None or not pending.done():
            return
        self._pending = None
        self._pending_since = None
        generation, launch_tick, chunk, seconds = pending.result()
        self._record_inference(seconds)
        if generation != self._generation:
            self.stats.discarded_chunks += 1
            return
        self.stats.delay_ticks.append(max(0, now_tick - launch_tick))
        if len(self.stats.delay_ticks) > 1000:
            del self.stats.delay_ticks[:500]
        self._merge(launch_tick, self._checked(chunk), now_tick)

    def _record_inference(self, seconds: float) -> None:
        self.stats.inferences += 1
        self.stats.inference_s.append(seconds)
        if len(self.stats.inference_s) > 1000:
            del self.stats.inference_s[:500]

    def _checked(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] < 1:
            raise DeployError(f"the policy returned an action chunk of shape {chunk.shape}; expected (T, A)")
        if not np.isfinite(chunk).all():
            raise DeployError("the policy returned NaN/inf actions; refusing to command them")
        return chunk

    def _merge(self, launch_tick: int, chunk: np.ndarray, now_tick: int) -> None:
        """Plan ``chunk[i]`` for tick ``launch_tick + i``; ticks before ``now_tick`` have passed."""
        ensemble = self.temporal_ensemble_coeff is not None
        # Ensembling averages every prediction of a tick, so it uses the whole chunk (ACT sets
        # n_action_steps=1 then); otherwise only the first n_action_steps are meant to be executed.
        horizon = chunk.shape[0] if ensemble else min(self.n_action_steps, chunk.shape[0])
        with self._lock:
            self._last_chunk = (launch_tick, chunk)
            for i in range(horizon):
                t = launch_tick + i
                if t < now_tick:
                    self.stats.discarded_actions += 1
                    continue
                slot = self._slots.get(t)
                if ensemble and slot is not None:
                    w = math.exp(-self.temporal_ensemble_coeff * slot.count)
                    slot.total = slot.total + w * chunk[i]
                    slot.weight += w
                    slot.count += 1
                else:
                    # Replacement: the newer chunk saw a newer observation, so it wins the overlap.
                    self._slots[t] = _Slot(total=chunk[i].copy(), weight=1.0)
