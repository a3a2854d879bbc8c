"""Sentry recording: keep the last N seconds of every topic in memory, save them as an episode on a trigger.

The policy runs on (the recorder stays in RECORDING), nothing reaches the disk until something worth
keeping happens — a success or failure signal, an operator's key or service call — and then the
buffered window becomes one bag, converted like any other episode. Messages stay serialized (as the
recorder receives them), so the buffer costs their size: 30 s of a 640x480 rgb8 camera at 30 Hz is
~830 MB; choose the window for the machine.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from apprentice.bag.errors import BagError


@dataclass(frozen=True)
class Buffered:
    topic: str
    data: bytes
    log_time_ns: int


class SentryBuffer:
    """A rolling window of serialized messages by log time: older than ``window_s`` behind the newest
    message is dropped as messages arrive."""

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise BagError(f"sentry window must be > 0 s, got {window_s}")
        self.window_ns = round(window_s * 1e9)
        self._messages: deque[Buffered] = deque()
        self.nbytes = 0

    def add(self, topic: str, data: bytes, log_time_ns: int) -> None:
        self._messages.append(Buffered(topic, bytes(data), int(log_time_ns)))
        self.nbytes += len(data)
        # Receive order is log-time order (one clock, one node), so the oldest are at the left.
        horizon = int(log_time_ns) - self.window_ns
        while self._messages and self._messages[0].log_time_ns < horizon:
            self.nbytes -= len(self._messages.popleft().data)

    def count(self, topic: str) -> int:
        return sum(1 for m in self._messages if m.topic == topic)

    def span_s(self) -> float:
        """Seconds between the oldest and the newest buffered message."""
        if not self._messages:
            return 0.0
        return (self._messages[-1].log_time_ns - self._messages[0].log_time_ns) * 1e-9

    def drain(self) -> list[Buffered]:
        """Every buffered message in receive order; the buffer starts empty again (episodes never overlap)."""
        out = list(self._messages)
        self.clear()
        return out

    def clear(self) -> None:
        self._messages.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._messages)
