"""Gamepads: evdev InputEvent streams (the layer the evdev reader feeds) and sensor_msgs/Joy arrays."""

from __future__ import annotations

import numpy as np
import pytest
from evdev import InputEvent, ecodes

from apprentice.resources import config_path
from apprentice.teleop import DeviceSource, TeleopError, load_device_map
from apprentice.teleop.gamepad import EvdevGamepad, JoyInput
from apprentice.teleop.mapping import DeviceMap

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
ABSINFO = {ecodes.ABS_X: (-32768, 32767), ecodes.ABS_Y: (-32768, 32767), ecodes.ABS_RX: (-32768, 32767),
           ecodes.ABS_RY: (-32768, 32767), ecodes.ABS_Z: (0, 1023), ecodes.ABS_HAT0Y: (-1, 1)}  # xpad's ranges


def feed(pad: EvdevGamepad, *events: tuple[int, int, int]) -> None:
    for kind, code, value in events:
        pad.handle(InputEvent(0, 0, kind, code, value))
    pad.handle(InputEvent(0, 0, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))


def test_evdev_axes_are_normalised_and_inverted_as_the_map_says() -> None:
    pad = EvdevGamepad(None, load_device_map(config_path("teleop", "gamepad_joints.yaml")), absinfo=ABSINFO)
    feed(pad, (ecodes.EV_ABS, ecodes.ABS_X, -32768), (ecodes.EV_ABS, ecodes.ABS_Y, -32768),
         (ecodes.EV_ABS, ecodes.ABS_Z, 1023), (ecodes.EV_ABS, ecodes.ABS_HAT0Y, -1),
         (ecodes.EV_KEY, ecodes.BTN_TL, 1), (ecodes.EV_KEY, ecodes.BTN_NORTH, 1))  # fmt: skip
    snap = pad.state.snapshot()
    # stick full left and full up read +1 (joy_node's convention); trigger 0..1; hat up +1
    assert snap.axes["left_x"] == pytest.approx(1.0) and snap.axes["left_y"] == pytest.approx(1.0)
    assert snap.axes["lt"] == pytest.approx(1.0) and snap.axes["hat_y"] == pytest.approx(1.0)
    assert snap.buttons == {"tl", "y"} and snap.presses == ("tl", "y")
    feed(pad, (ecodes.EV_ABS, ecodes.ABS_X, 0), (ecodes.EV_KEY, ecodes.BTN_TL, 0))
    snap = pad.state.snapshot()
    assert abs(snap.axes["left_x"]) < 1e-4 and snap.buttons == {"y"}


def test_evdev_stream_drives_joints_with_the_dead_man() -> None:
    device_map = load_device_map(config_path("teleop", "gamepad_joints.yaml"))
    pad = EvdevGamepad(None, device_map, absinfo=ABSINFO)
    source = DeviceSource(pad, device_map, JOINTS, gripper_joint="gripper")
    source.observe(np.zeros(6))
    feed(pad, (ecodes.EV_ABS, ecodes.ABS_X, -32768))  # stick left, no dead-man
    assert source.read() is None
    feed(pad, (ecodes.EV_KEY, ecodes.BTN_TL, 1), (ecodes.EV_ABS, ecodes.ABS_X, 1500))  # inside the dead-zone
    t0 = pad.state.snapshot().stamp
    source.read(now=t0)
    assert np.allclose(source.read(now=t0 + 0.05), 0)  # no drift from a resting stick
    feed(pad, (ecodes.EV_ABS, ecodes.ABS_X, -32768))
    t1 = pad.state.snapshot().stamp
    source.read(now=t1)
    assert source.read(now=t1 + 0.05)[0] == pytest.approx(0.05, abs=1e-3)  # 1 rad/s for 50 ms


def test_joy_messages_map_by_index() -> None:
    device_map = load_device_map(config_path("teleop", "gamepad.yaml"))
    joy = JoyInput(device_map)
    axes = [0.5, -1.0, 0.0, 0.0, 0.0, 0.0]
    buttons = [0] * 15
    buttons[9] = buttons[11] = 1  # LB (dead-man) and d-pad up
    joy.on_joy(axes, buttons, now=1.0)
    snap = joy.state.snapshot(now=1.0)
    assert snap.axes["left_x"] == 0.5 and snap.axes["left_y"] == -1.0
    assert snap.buttons == {"tl", "dpad_up"} and snap.stamp == 1.0
    joy.on_joy(axes[:2], buttons[:3], now=2.0)  # a shorter message (another driver): what is there is used
    assert joy.state.snapshot().stamp == 2.0


def test_a_map_without_device_tables_or_with_a_wrong_code_is_refused() -> None:
    with pytest.raises(TeleopError, match="no axes table"):
        JoyInput(DeviceMap())
    with pytest.raises(TeleopError, match="unknown evdev code 'ABS_NOPE'"):
        EvdevGamepad(None, DeviceMap(evdev={"axes": {"ABS_NOPE": "x"}}))
