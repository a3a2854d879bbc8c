"""Watchdog: stop commanding when inputs or inference stall, and stay stopped until re-armed.

Each monitored source is fed when it makes progress (a fresh observation, a finished inference, a
control tick). If any source is silent for longer than its timeout while the policy is commanding,
the watchdog trips and latches: a stalled camera or a model that hangs must not resume driving the
arm by itself half a second later, nor when the next episode starts (`resume()` keeps the trip).
`rearm()` (the enable service: an operator's decision) clears it.
"""

from __future__ import annotations

from dataclasses import dataclass

from apprentice.deploy import DeployError


@dataclass
class Trip:
    source: str
    silent_s: float
    timeout_s: float
    message: str = ""  # a fault (an exception in inference, say) rather than a silence

    def __str__(self) -> str:
        if self.message:
            return f"{self.source}: {self.message}"
        return f"{self.source} stalled: nothing for {self.silent_s:.3f} s (timeout {self.timeout_s:.3f} s)"


class Watchdog:
    """Named progress timers with per-source timeouts; times are monotonic nanoseconds."""

    def __init__(self, timeouts_s: dict[str, float]) -> None:
        for source, timeout in timeouts_s.items():
            if timeout <= 0:
                raise DeployError(f"watchdog timeout for {source!r} must be > 0 s, got {timeout}")
        self.timeouts_s = dict(timeouts_s)
        self._last_ns: dict[str, int | None] = dict.fromkeys(timeouts_s)
        self.tripped: Trip | None = None
        self.trips = 0

    def feed(self, source: str, now_ns: int) -> None:
        if source not in self._last_ns:
            raise DeployError(f"unknown watchdog source {source!r}; known: {', '.join(self._last_ns)}")
        self._last_ns[source] = now_ns

    def rearm(self, now_ns: int) -> None:
        """Clear a trip and restart every timer from ``now_ns``."""
        self.tripped = None
        for source in self._last_ns:
            self._last_ns[source] = now_ns

    def resume(self, now_ns: int) -> None:
        """Restart every timer from ``now_ns`` (a new episode, a hand-back) but keep a latched trip:
        only rearm() — a person's decision — clears it."""
        for source in self._last_ns:
            self._last_ns[source] = now_ns

    def fault(self, message: str) -> Trip:
        """Trip and latch now, for a failure that is not a silence (e.g. inference raised)."""
        if self.tripped is None:
            self.tripped = Trip("fault", 0.0, 0.0, message)
            self.trips += 1
        return self.tripped

    def check(self, now_ns: int, sources: tuple[str, ...] | None = None) -> Trip | None:
        """The latched trip, or a new one if some source (of ``sources``) has been silent too long."""
        if self.tripped is not None:
            return self.tripped
        for source, last in self._last_ns.items():
            if sources is not None and source not in sources:
                continue
            if last is None:
                continue  # not started yet: rearm() starts every timer
            silent = (now_ns - last) * 1e-9
            if silent > self.timeouts_s[source]:
                self.tripped = Trip(source, silent, self.timeouts_s[source])
                self.trips += 1
                return self.tripped
        return None
