"""Keyboards: a real pseudo-terminal for the terminal keyboard; evdev InputEvents for the evdev keyboard
(/dev/uinput is not available on this machine, so events enter at the layer the evdev reader feeds)."""

from __future__ import annotations

import os
import time

import pytest
from evdev import InputEvent, ecodes

from apprentice.teleop import TeleopError
from apprentice.teleop.keyboard import EvdevKeyboard, TerminalKeyboard, evdev_key_name, parse_terminal_keys


def wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def test_terminal_bytes_to_key_names() -> None:
    data = b"wA1 \r\x7f\x1b[C\x1b[D\x1bOA\x1b[1;5C\x1b"
    assert parse_terminal_keys(data) == ["w", "a", "1", "space", "enter", "backspace", "right", "left", "up", "escape"]


def test_evdev_names_match_the_terminal_names() -> None:
    for code, name in [(ecodes.KEY_W, "w"), (ecodes.KEY_1, "1"), (ecodes.KEY_SPACE, "space"),
                       (ecodes.KEY_ENTER, "enter"), (ecodes.KEY_BACKSPACE, "backspace"),
                       (ecodes.KEY_RIGHT, "right"), (ecodes.KEY_ESC, "escape")]:  # fmt: skip
        assert evdev_key_name(code) == name
        assert parse_terminal_keys({"space": b" ", "enter": b"\r", "backspace": b"\x7f", "right": b"\x1b[C",
                                    "escape": b"\x1b"}.get(name, name.encode())) == [name]  # fmt: skip


def test_terminal_keyboard_on_a_pty() -> None:
    master, slave = os.openpty()
    keyboard = TerminalKeyboard(os.ttyname(slave), hold_s=0.2)
    try:
        os.write(master, b"w\x1b[C")
        assert wait_until(lambda: "w" in keyboard.state.snapshot().buttons)
        snap = keyboard.state.snapshot()
        assert "right" in snap.buttons or "right" in snap.presses
        time.sleep(0.3)  # no autorepeat: the press has run out
        snap = keyboard.state.snapshot()
        assert "w" not in snap.buttons and snap.connected
        assert time.monotonic() - snap.stamp < 0.2  # the reader loop keeps showing life
    finally:
        keyboard.close()
        os.close(slave)
        os.close(master)


def test_terminal_keyboard_marks_a_hung_up_terminal_lost() -> None:
    master, slave = os.openpty()
    keyboard = TerminalKeyboard(os.ttyname(slave))
    os.close(slave)
    try:
        os.close(master)  # the terminal window closes
        assert wait_until(lambda: not keyboard.state.snapshot().connected)
    finally:
        keyboard.close()


def test_terminal_keyboard_refuses_a_non_terminal(tmp_path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(TeleopError, match="is not a terminal"):
        TerminalKeyboard(str(path))
    with pytest.raises(TeleopError, match="cannot open terminal"):
        TerminalKeyboard(str(tmp_path / "missing"))


def test_evdev_keyboard_press_release_and_autorepeat() -> None:
    keyboard = EvdevKeyboard(None)
    for code, value in [(ecodes.KEY_W, 1), (ecodes.KEY_W, 2), (ecodes.KEY_ENTER, 1), (ecodes.KEY_ENTER, 0)]:
        keyboard.handle(InputEvent(0, 0, ecodes.EV_KEY, code, value))
        keyboard.handle(InputEvent(0, 0, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
    snap = keyboard.state.snapshot()
    assert snap.buttons == {"w"} and snap.presses == ("w", "enter")  # autorepeat is not a new press
    keyboard.handle(InputEvent(0, 0, ecodes.EV_KEY, ecodes.KEY_W, 0))
    assert keyboard.state.snapshot().buttons == frozenset()
