"""Latency and loop-jitter statistics over a sliding window (what the node reports on /diagnostics)."""

from __future__ import annotations

from collections import deque

import numpy as np


class LatencyStats:
    """Durations in seconds over the last ``window`` samples; summaries in milliseconds."""

    def __init__(self, window: int = 1000) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self.count = 0  # all samples ever, not only the window

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        self.count += 1

    def summary(self) -> dict[str, float]:
        """{n, mean_ms, p50_ms, p90_ms, p99_ms, max_ms} of the window (empty dict before any sample)."""
        if not self._samples:
            return {}
        ms = np.asarray(self._samples) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return {
            "n": float(len(ms)),
            "mean_ms": float(ms.mean()),
            "p50_ms": float(p50),
            "p90_ms": float(p90),
            "p99_ms": float(p99),
            "max_ms": float(ms.max()),
        }


class LoopTimer:
    """Control-loop timing: jitter is each tick's deviation from the nominal period.

    A tick later than ``overrun_factor`` periods counts as an overrun (a missed control deadline).
    """

    def __init__(self, fps: float, window: int = 1000, overrun_factor: float = 1.5) -> None:
        self.period_s = 1.0 / fps
        self.jitter = LatencyStats(window)
        self.overruns = 0
        self._overrun_s = overrun_factor * self.period_s
        self._last_ns: int | None = None

    def tick(self, now_ns: int) -> float | None:
        """Record a tick at ``now_ns`` (monotonic); returns the interval since the previous one."""
        last, self._last_ns = self._last_ns, now_ns
        if last is None:
            return None
        interval = (now_ns - last) * 1e-9
        self.jitter.add(abs(interval - self.period_s))
        if interval > self._overrun_s:
            self.overruns += 1
        return interval

    def restart(self) -> None:
        """Forget the previous tick (after a pause the first interval is not jitter)."""
        self._last_ns = None

    def summary(self) -> dict[str, float]:
        out = {f"jitter_{k}": v for k, v in self.jitter.summary().items() if k != "n"}
        out["overruns"] = float(self.overruns)
        return out
