"""Devices by name (what the teleop node's `source` opens), end-effector maps through the real IK."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from apprentice.robots import load_robot
from apprentice.teleop import DeviceOptions, TeleopError, load_kinematics, make_device_source

pytest.importorskip("pinocchio", reason="end-effector control needs the teleop extra (pin)")


def hold_key(master: int, key: bytes, source, seconds: float) -> np.ndarray:
    """A held key in a terminal: ~30 autorepeat presses a second; the follower reaches every target."""
    target = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        os.write(master, key)
        time.sleep(0.03)
        if (t := source.read()) is not None:
            target = t
            source.observe(t)
    return target


@pytest.mark.parametrize(("key", "axis", "sign"), [(b"r", 2, 1.0), (b"w", 0, 1.0), (b"a", 1, 1.0), (b"f", 2, -1.0)])
def test_terminal_keys_move_the_end_effector_along_the_base_axes(key: bytes, axis: int, sign: float) -> None:
    robot = load_robot("so101_follower")
    kinematics = load_kinematics(robot)
    master, slave = os.openpty()
    source = make_device_source("keyboard", robot, "", DeviceOptions(device=os.ttyname(slave)), 0.1)
    try:
        assert source.map.mode == "end_effector"
        q0 = np.array([0.0, -0.5, 0.5, 0.5, 0.0, 0.3])
        source.observe(q0)
        target = hold_key(master, key, source, 0.6)
        moved = kinematics.fk(target[:5])[:3, 3] - kinematics.fk(q0[:5])[:3, 3]
        assert sign * moved[axis] > 0.015  # 5 cm/s for ~0.6 s
        assert np.abs(np.delete(moved, axis)).max() < 0.005  # along that axis only
        assert target[5] == pytest.approx(0.3)  # the gripper holds when no gripper key is pressed
        target = hold_key(master, b"m", source, 0.3)  # m opens the gripper
        assert target[5] > 0.35
    finally:
        source.close()
        os.close(slave)
        os.close(master)


def test_phone_source_by_name_serves_its_page_and_an_unknown_source_is_refused() -> None:
    source = make_device_source("phone", load_robot("so101_follower"), "phone_joints", DeviceOptions(phone_port=0))
    try:
        assert source.device.url.startswith("http://127.0.0.1:") and source.map.deadman == "deadman"
    finally:
        source.close()
    with pytest.raises(TeleopError, match="source must be leader_arm or one of"):
        make_device_source("theremin", load_robot("so101_follower"))
    with pytest.raises(TeleopError, match="cannot open /dev/input/event99"):
        make_device_source(
            "gamepad_evdev", load_robot("so101_follower"), "", DeviceOptions(device="/dev/input/event99")
        )
