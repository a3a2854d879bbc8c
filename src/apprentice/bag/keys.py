"""Keyboard episode control in a terminal, as lerobot-record: → end/save episode, ← re-record, Esc stop."""

from __future__ import annotations

import os
import select
import sys
import threading
from collections.abc import Callable
from typing import IO

_SEQUENCES = {b"\x1b[C": "right", b"\x1bOC": "right", b"\x1b[D": "left", b"\x1bOD": "left"}


def parse_keys(data: bytes) -> list[str]:
    """Terminal bytes -> key names ('right', 'left', 'escape'); other keys are ignored."""
    keys, i = [], 0
    while i < len(data):
        for seq, name in _SEQUENCES.items():
            if data.startswith(seq, i):
                keys.append(name)
                i += len(seq)
                break
        else:
            if data[i : i + 1] == b"\x1b" and not data.startswith(b"\x1b[", i) and not data.startswith(b"\x1bO", i):
                keys.append("escape")
            i += 1
    return keys


class KeyListener:
    """Reads keys from a TTY on a thread (terminal in cbreak mode while it runs, restored by stop())."""

    def __init__(self, on_key: Callable[[str], None], stream: IO[str] | None = None) -> None:
        self.on_key = on_key
        self.stream = stream or sys.stdin
        self._stop = threading.Event()
        self._saved: list | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start listening; False (and nothing done) when the stream is not a terminal."""
        if not self.stream.isatty():
            return False
        import termios
        import tty

        fd = self.stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._loop, args=(fd,), name="keys", daemon=True)
        self._thread.start()
        return True

    def _loop(self, fd: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                for key in parse_keys(os.read(fd, 32)):
                    self.on_key(key)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None


def progress_line(s: dict) -> str:
    """One terminal line from Recorder.status()."""
    of = f"/{s['num_episodes']}" if s["num_episodes"] else ""
    left = f" {s['remaining_s']:5.1f} s left" if s["remaining_s"] >= 0 else f" {s['elapsed_s']:5.1f} s"
    fault = f" | POLICY FAULT: {s['fault']}" if s.get("fault") else ""  # latched until ~/enable re-arms it
    return (
        f"episode {s['episode_index']}{of} {s['state_name']:<9}{left} | frames {s['frames']:5d} | "
        f"saved {s['episodes_saved']} | → save  ← re-record  esc stop{fault}"
    )
