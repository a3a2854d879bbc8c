"""Gamepads: a Linux input device through evdev, or any sensor_msgs/Joy topic (joy_node, game_controller_node).

Both turn raw inputs into the names of the device map (`left_x`, `a`, `tl`, …) through the map's `evdev`
or `joy` section, so the motion part of config/teleop/gamepad.yaml is shared. A leading `-` on a name
inverts the axis (evdev's stick Y grows downwards; joy_node already flips it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apprentice.teleop.device import InputState
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.mapping import DeviceMap


def _named(table: dict, section: str, source: str) -> dict[Any, tuple[str, float]]:
    """{raw: "name" | "-name"} -> {raw: (name, sign)}."""
    out = {}
    for raw, name in (table or {}).items():
        name = str(name)
        out[raw] = (name[1:], -1.0) if name.startswith("-") else (name, 1.0)
    if not out and section == "axes":
        raise TeleopError(
            f"{source}: the device map has no {section} table for this device; see config/teleop/gamepad.yaml"
        )
    return out


class EvdevGamepad:
    """A gamepad's /dev/input/event* device. `absinfo` ({code: (min, max)}) is read from the device when
    one is given; with device=None events come only through handle() (the layer the reader feeds)."""

    def __init__(
        self, device: Any | None, device_map: DeviceMap, absinfo: dict[int, tuple[int, int]] | None = None
    ) -> None:
        from evdev import ecodes

        from apprentice.teleop.evdev_reader import EvdevReader

        self.name = f"gamepad {getattr(device, 'path', 'evdev')}"
        self.state = InputState()
        section = device_map.evdev or {}
        try:
            self.axes = {ecodes.ecodes[k]: v for k, v in _named(section.get("axes"), "axes", self.name).items()}
            self.buttons = {
                ecodes.ecodes[k]: v for k, v in _named(section.get("buttons"), "buttons", self.name).items()
            }
        except KeyError as exc:
            raise TeleopError(
                f"{self.name}: device map names an unknown evdev code {exc}; use names like ABS_X, BTN_SOUTH"
            ) from exc
        if absinfo is None and device is not None:
            absinfo = {
                code: (info.min, info.max) for code, info in device.capabilities(absinfo=True).get(ecodes.EV_ABS, [])
            }
        self.absinfo = absinfo or {}
        self.reader = None if device is None else EvdevReader(device, self.handle, self.state)

    def handle(self, event: Any) -> None:
        """One evdev InputEvent: EV_ABS -> a normalised axis, EV_KEY -> a button."""
        from evdev import ecodes

        if event.type == ecodes.EV_ABS and event.code in self.axes:
            name, sign = self.axes[event.code]
            low, high = self.absinfo.get(event.code, (-1, 1))
            span = max(1, high - low)
            # Centred axes (sticks, hats) read -1..1; one-sided ones (triggers, 0..1023) read 0..1.
            value = 2.0 * (event.value - low) / span - 1.0 if low < 0 else (event.value - low) / span
            self.state.set_axis(name, sign * max(-1.0, min(1.0, value)))
        elif event.type == ecodes.EV_KEY and event.code in self.buttons and event.value in (0, 1):
            self.state.set_button(self.buttons[event.code][0], event.value == 1)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


class JoyInput:
    """sensor_msgs/Joy messages (fed by the teleop node's subscription): every message is a sign of life,
    so a joystick driver that stops publishing (unplugged, crashed) stops the arm after `timeout_s`."""

    def __init__(self, device_map: DeviceMap, topic: str = "joy") -> None:
        self.name = f"sensor_msgs/Joy on {topic}"
        self.state = InputState()
        section = device_map.joy or {}
        self.axes = {int(k): v for k, v in _named(section.get("axes"), "axes", self.name).items()}
        self.buttons = {int(k): v for k, v in _named(section.get("buttons"), "buttons", self.name).items()}

    def on_joy(self, axes: Sequence[float], buttons: Sequence[int], now: float | None = None) -> None:
        for index, (name, sign) in self.axes.items():
            if index < len(axes):
                self.state.set_axis(name, sign * float(axes[index]), now)
        for index, (name, _) in self.buttons.items():
            if index < len(buttons):
                self.state.set_button(name, bool(buttons[index]), now)
        self.state.alive(now)

    def close(self) -> None:
        pass  # the node owns the subscription
