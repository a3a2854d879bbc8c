"""Keyboard control over a real pseudo-terminal: arrows and Esc reach the callback, the tty is restored."""

from __future__ import annotations

import os
import pty
import termios
import time

from apprentice.bag.keys import KeyListener, parse_keys


def test_keys_from_a_pty() -> None:
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "r")
    before = termios.tcgetattr(slave)
    got: list[str] = []
    listener = KeyListener(got.append, stream=stream)
    try:
        assert listener.start()
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak while listening
        for seq in (b"\x1b[C", b"\x1b[D", b"\x1b"):
            os.write(master, seq)
            time.sleep(0.15)  # separate reads, as separate key presses are
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        listener.stop()
    assert got == ["right", "left", "escape"]
    assert termios.tcgetattr(slave) == before
    stream.close()
    os.close(master)


def test_not_a_tty_is_a_no_op(tmp_path) -> None:
    with open(tmp_path / "f", "w+") as f:
        assert KeyListener(lambda k: None, stream=f).start() is False


def test_parse_keys_mixed() -> None:
    assert parse_keys(b"x\x1b[Cy\x1bOD") == ["right", "left"]
