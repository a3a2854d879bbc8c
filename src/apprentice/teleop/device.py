"""The state every input device shares: what is held, where the sticks are, when it last showed life.

Device readers (a tty thread, an evdev thread, a Joy callback, the phone's websocket) write into an
InputState; the teleop tick takes a snapshot. Keeping the device side this thin is what lets the same
gating, clamping and end-effector code serve every device.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class DeviceInput:
    """One snapshot of a device."""

    axes: dict[str, float]  # velocity inputs, -1..1 (sticks, triggers)
    positions: dict[str, float]  # position inputs, radians (the phone's orientation)
    buttons: frozenset[str]  # held now
    presses: tuple[str, ...]  # pressed since the previous snapshot, oldest first
    stamp: float  # time.monotonic() of the device's last sign of life
    connected: bool


@dataclass
class InputState:
    """Thread-safe latest input of one device."""

    axes: dict[str, float] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    held_until: dict[str, float] = field(default_factory=dict)  # taps: held until a deadline
    presses: list[str] = field(default_factory=list)
    stamp: float = 0.0
    connected: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _event(self, now: float | None) -> float:
        now = time.monotonic() if now is None else now
        self.stamp = now
        return now

    def set_axis(self, name: str, value: float, now: float | None = None) -> None:
        with self._lock:
            self._event(now)
            self.axes[name] = value

    def set_positions(self, values: dict[str, float], now: float | None = None) -> None:
        """Several position inputs from one reading (a reader never sees half of an orientation)."""
        with self._lock:
            self._event(now)
            self.positions.update(values)

    def set_button(self, name: str, down: bool, now: float | None = None) -> None:
        with self._lock:
            self._event(now)
            if down and name not in self.held:
                self.presses.append(name)
            (self.held.add if down else self.held.discard)(name)

    def tap(self, name: str, hold_s: float, now: float | None = None) -> None:
        """A key from a terminal, which reports presses but no releases: held for hold_s (autorepeat
        renews it while the key stays down)."""
        with self._lock:
            now = self._event(now)
            self.presses.append(name)
            self.held_until[name] = now + hold_s

    def alive(self, now: float | None = None) -> None:
        """The device is still there (a reader loop turned over, a heartbeat arrived)."""
        with self._lock:
            self.stamp = time.monotonic() if now is None else now
            self.connected = True

    def lost(self) -> None:
        with self._lock:
            self.connected = False
            self.held.clear()
            self.held_until.clear()
            self.axes.clear()

    def snapshot(self, now: float | None = None) -> DeviceInput:
        now = time.monotonic() if now is None else now
        with self._lock:
            held = self.held | {name for name, until in self.held_until.items() if until > now}
            presses, self.presses = tuple(self.presses), []
            return DeviceInput(
                axes=dict(self.axes),
                positions=dict(self.positions),
                buttons=frozenset(held),
                presses=presses,
                stamp=self.stamp,
                connected=self.connected,
            )


class InputDevice(Protocol):
    """A device: it fills `state` (from its own thread, or from the node's callbacks) until closed."""

    name: str
    state: InputState

    def close(self) -> None: ...
