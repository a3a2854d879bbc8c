"""Keyboards: a terminal (raw tty, no X or root needed) and a Linux input device through evdev.

Both name keys the same way (`w`, `1`, `space`, `enter`, `backspace`, `left`, `right`, `up`, `down`,
`escape`), so one map (config/teleop/keyboard.yaml) serves both. A terminal reports presses but never
releases: a key counts as held for `hold_s` after each press, and the terminal's autorepeat renews it
while the key stays down. evdev reports real press/release.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading

from apprentice.teleop.device import InputState
from apprentice.teleop.errors import TeleopError

_ESCAPES = {
    b"\x1b[A": "up", b"\x1b[B": "down", b"\x1b[C": "right", b"\x1b[D": "left",
    b"\x1bOA": "up", b"\x1bOB": "down", b"\x1bOC": "right", b"\x1bOD": "left",
    b"\x1b[5~": "page_up", b"\x1b[6~": "page_down",
}  # fmt: skip
_SINGLE = {b" ": "space", b"\r": "enter", b"\n": "enter", b"\x7f": "backspace", b"\x08": "backspace", b"\t": "tab"}


def parse_terminal_keys(data: bytes) -> list[str]:
    """Terminal bytes -> key names; letters are lower-cased (Shift is not a separate key here)."""
    keys, i = [], 0
    while i < len(data):
        for seq, name in _ESCAPES.items():
            if data.startswith(seq, i):
                keys.append(name)
                i += len(seq)
                break
        else:
            byte = data[i : i + 1]
            if byte == b"\x1b":
                if data.startswith((b"\x1b[", b"\x1bO"), i):  # an escape sequence we do not map: skip it whole
                    j = i + 2
                    while j < len(data) and not (0x40 <= data[j] <= 0x7E):
                        j += 1
                    i = j + 1
                    continue
                keys.append("escape")
            elif byte in _SINGLE:
                keys.append(_SINGLE[byte])
            elif byte.isalnum() or byte in b"[],.;'/-=":
                keys.append(byte.decode().lower())
            i += 1
    return keys


class TerminalKeyboard:
    """Keys typed in a terminal: this process's stdin, or another terminal named by path (e.g. /dev/pts/3,
    a pty), in cbreak mode while it runs (restored by close())."""

    def __init__(self, tty: str = "", hold_s: float = 0.12) -> None:
        self.name = f"keyboard on {tty or 'stdin'}"
        self.state = InputState()
        self.hold_s = hold_s
        self._own_fd = tty != ""
        try:
            self.fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY) if tty else sys.stdin.fileno()
        except OSError as exc:
            raise TeleopError(f"keyboard: cannot open terminal {tty} ({exc.strerror}); give a tty path") from exc
        if not os.isatty(self.fd):
            self._close_fd()
            raise TeleopError(
                f"keyboard: {tty or 'stdin'} is not a terminal; run the node in a terminal, give "
                "keyboard_tty:=/dev/pts/N, or use source:=keyboard_evdev"
            )
        import termios
        import tty as tty_mode

        self._saved = termios.tcgetattr(self.fd)
        tty_mode.setcbreak(self.fd)
        self._stop = threading.Event()
        self.state.alive()
        self._thread = threading.Thread(target=self._loop, name="keyboard", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                data = os.read(self.fd, 64) if ready else b""
            except OSError:
                self.state.lost()
                return
            if ready and not data:  # the terminal closed (hang-up)
                self.state.lost()
                return
            for key in parse_terminal_keys(data):
                self.state.tap(key, self.hold_s)
            self.state.alive()

    def _close_fd(self) -> None:
        if self._own_fd:
            os.close(self.fd)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=1.0)
        import termios

        with contextlib.suppress(termios.error):  # the terminal is already gone; nothing to restore
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        self._close_fd()


def evdev_key_name(code: int) -> str:
    """evdev key code -> the name the terminal parser gives the same key (KEY_W -> `w`, KEY_ENTER -> `enter`)."""
    from evdev import ecodes

    names = ecodes.KEY.get(code) or ecodes.BTN.get(code) or f"KEY_{code}"
    name = names[0] if isinstance(names, (list, tuple)) else names
    name = name.lower().removeprefix("key_")
    return {"esc": "escape", "pageup": "page_up", "pagedown": "page_down"}.get(name, name)


class EvdevKeyboard:
    """A keyboard's /dev/input/event* device (read access: the `input` group, or root). With device=None
    no reader runs and events come only through handle() — the layer the reader feeds."""

    def __init__(self, device: object | None, grab: bool = False) -> None:
        from apprentice.teleop.evdev_reader import EvdevReader

        self.state = InputState()
        self.name = f"keyboard {getattr(device, 'path', 'evdev')}"
        self.reader = None if device is None else EvdevReader(device, self.handle, self.state, grab=grab)

    def handle(self, event: object) -> None:
        """One evdev InputEvent (EV_KEY: value 1 down, 0 up, 2 autorepeat)."""
        from evdev import ecodes

        if event.type == ecodes.EV_KEY and event.value in (0, 1):
            self.state.set_button(evdev_key_name(event.code), event.value == 1)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
