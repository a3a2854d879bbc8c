"""Reading a Linux input device (evdev) on a thread; finding a keyboard or gamepad by capability."""

from __future__ import annotations

import contextlib
import select
import threading
from collections.abc import Callable
from typing import Any

from apprentice.teleop.device import InputState
from apprentice.teleop.errors import TeleopError


def _evdev() -> Any:
    try:
        import evdev
    except ImportError as exc:
        raise TeleopError("evdev devices need the `evdev` package (pip install evdev; Linux only)") from exc
    return evdev


def find_device(path: str, kind: str) -> Any:
    """Open `path`, or the first readable /dev/input/event* that looks like a `kind` (keyboard | gamepad)."""
    evdev = _evdev()
    ecodes = evdev.ecodes
    if path:
        try:
            return evdev.InputDevice(path)
        except OSError as exc:
            raise TeleopError(
                f"{kind}: cannot open {path} ({exc.strerror}); check it exists and that you may read it "
                "(the `input` group)"
            ) from exc
    for candidate in evdev.list_devices():
        try:
            device = evdev.InputDevice(candidate)
        except OSError:
            continue
        keys = set(device.capabilities().get(ecodes.EV_KEY, []))
        if kind == "keyboard" and {ecodes.KEY_A, ecodes.KEY_SPACE} <= keys:
            return device
        if (
            kind == "gamepad"
            and (keys & {ecodes.BTN_SOUTH, ecodes.BTN_TRIGGER})
            and ecodes.EV_ABS in device.capabilities()
        ):
            return device
        device.close()
    raise TeleopError(
        f"{kind}: no readable {kind} under /dev/input (plugged in? in the `input` group?); "
        "give device:=/dev/input/eventN"
    )


class EvdevReader:
    """Feeds every event of `device` to `handle` on a thread; marks the state lost when the device goes."""

    def __init__(self, device: Any, handle: Callable[[Any], None], state: InputState, grab: bool = False) -> None:
        self.device = device
        self.handle = handle
        self.state = state
        if grab:
            device.grab()  # other programs (the desktop) stop seeing its keys while we drive the arm
        self._stop = threading.Event()
        state.alive()
        self._thread = threading.Thread(target=self._loop, name=f"evdev {device.path}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.device.fd], [], [], 0.05)
                events = list(self.device.read()) if ready else []
            except (OSError, ValueError):  # unplugged (ENODEV) or closed under us
                self.state.lost()
                return
            for event in events:
                self.handle(event)
            self.state.alive()  # a stick held still sends nothing: liveness is the device still answering

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        with contextlib.suppress(OSError):  # already gone with the hardware
            self.device.close()
