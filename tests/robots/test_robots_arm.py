"""Arm in joint space on a virtual bus: calibration handling, safety clamps, fatal-error torque off."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from apprentice.motors import MotorCalibration, VirtualServoBus
from apprentice.robots import Arm, RobotError, load_robot

# Every joint calibrated to 1047..3047 around mid 2047; the shafts start at 2047 + homing offset 100.
CALIBRATION = {
    name: MotorCalibration(id=i + 1, drive_mode=0, homing_offset=100, range_min=1047, range_max=3047)
    for i, name in enumerate(["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"])
}
TICK = 2 * math.pi / 4095


@pytest.fixture
def follower():
    definition = load_robot("so101_follower")
    with VirtualServoBus(
        "feetech",
        {j.id: j.model for j in definition.joints},
        tau_s=0.01,
        positions={j.id: 2147.0 for j in definition.joints},
    ) as virtual:
        arm = Arm(definition, virtual.port, calibration=CALIBRATION, max_relative_target=0.5, num_retry=1)
        arm.connect()
        try:
            yield virtual, arm
        finally:
            arm.disconnect(disable_torque=False)


def settle(arm: Arm, target: np.ndarray, timeout: float = 2.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        present = arm.read_positions()
        if np.allclose(present, target, atol=3 * TICK):
            break
        time.sleep(0.01)
    return present


def test_connect_writes_calibration_configures_and_holds(follower: tuple[VirtualServoBus, Arm]) -> None:
    virtual, arm = follower
    assert arm.bus.is_calibrated()
    assert all(m.get("Homing_Offset") == 100 and m.get("Min_Position_Limit") == 1047 for m in virtual.motors)
    assert virtual.motor(1).get("P_Coefficient") == 16 and virtual.motor(6).get("Overload_Torque") == 25
    assert arm.torque_enabled and all(m.get("Torque_Enable") == 1 for m in virtual.motors)
    np.testing.assert_allclose(arm.read_positions(), 0.0, atol=TICK)  # shafts at mid of the range


def test_commands_are_followed_and_clamped(follower: tuple[VirtualServoBus, Arm]) -> None:
    _, arm = follower
    goal = np.array([0.3, -0.2, 0.1, 0.0, 0.4, 0.2])
    sent = arm.send_positions(goal)
    np.testing.assert_allclose(sent, goal, atol=TICK)
    np.testing.assert_allclose(settle(arm, goal), goal, atol=3 * TICK)
    far = np.array([3.0, -3.0, 0.1, 0.0, 0.4, 0.2])  # 2.7 rad away: max_relative_target=0.5 holds it back
    sent = arm.send_positions(far)
    np.testing.assert_allclose(sent[:2], [0.8, -0.7], atol=4 * TICK)
    for _ in range(3):  # a few more steps: then the calibrated range (±1000 ticks) stops it
        settle(arm, sent)
        sent = arm.send_positions(far)
    np.testing.assert_allclose(sent[:2], [1000 * TICK, -1000 * TICK], atol=TICK)
    with pytest.raises(RobotError, match="6 finite positions"):
        arm.send_positions(np.array([0.0, np.nan, 0, 0, 0, 0]))


def test_dead_motor_is_fatal_and_releases_the_others(follower: tuple[VirtualServoBus, Arm]) -> None:
    virtual, arm = follower
    virtual.fault(3).silent = True
    with pytest.raises(RobotError, match=r"'elbow_flex' \(id 3\).*Torque disabled|could NOT be disabled"):
        arm.read_positions()
    assert not arm.torque_enabled
    assert [m.get("Torque_Enable") for m in virtual.motors] == [0, 0, 1, 0, 0, 0]


def test_overload_alarm_is_fatal(follower: tuple[VirtualServoBus, Arm]) -> None:
    virtual, arm = follower
    virtual.motor(2).set_overload(True)
    with pytest.raises(RobotError, match=r"motor alarm.*'shoulder_lift' \(id 2\).*Overload"):
        arm.read_positions()
    assert all(m.get("Torque_Enable") == 0 for m in virtual.motors)


def test_missing_calibration_joint_is_named() -> None:
    partial = {k: v for k, v in CALIBRATION.items() if k != "gripper"}
    with pytest.raises(RobotError, match=r"lacks joint\(s\) \['gripper'\]"):
        Arm(load_robot("so101_follower"), "/dev/null", calibration=partial)


def test_koch_leader_stays_limp_except_its_gripper_trigger() -> None:
    definition = load_robot("koch_leader")
    calibration = {
        j.name: MotorCalibration(id=j.id, drive_mode=0, homing_offset=0, range_min=1000, range_max=3000)
        for j in definition.joints
    }
    with VirtualServoBus("dynamixel", {j.id: j.model for j in definition.joints}) as virtual:
        arm = Arm(definition, virtual.port, calibration=calibration)
        arm.connect()
        assert [m.get("Torque_Enable") for m in virtual.motors] == [0, 0, 0, 0, 0, 1]
        assert virtual.motor(6).get("Goal_Position") == 1700  # 35 % of 1000..3000
        assert virtual.motor(6).get("Operating_Mode") == 5 and virtual.motor(1).get("Operating_Mode") == 4
        arm.disconnect()
        assert all(m.get("Torque_Enable") == 0 for m in virtual.motors)


@pytest.mark.parametrize("combined", [False, True], ids=["two_reads", "one_read"])
@pytest.mark.parametrize("robot_type", ["so101_follower", "koch_follower"])
def test_velocities_are_radians_per_second_in_the_direction_of_motion(robot_type: str, combined: bool) -> None:
    """Present_Velocity in each vendor's unit (Feetech steps/s, Dynamixel 0.229 rpm) comes out in rad/s,
    agreeing with how fast the measured positions change — read on their own or in the one SYNC_READ
    that also carries the positions (what the driver does per tick)."""
    from apprentice.robots.virtual_arm import make_virtual_arm

    definition = load_robot(robot_type)
    with make_virtual_arm(definition, tau_s=0.6) as virtual:
        arm = Arm(definition, virtual.port, num_retry=1)
        arm.connect()
        try:
            np.testing.assert_allclose(arm.read_velocities(), 0.0, atol=0.01)  # at rest
            start = arm.read_positions()
            goal = start + np.array([0.6, -0.6, 0.6, -0.6, 0.6, 0.3])
            arm.send_positions(goal)
            time.sleep(0.1)
            def read() -> tuple[float, np.ndarray, np.ndarray]:
                if combined:
                    return (time.monotonic(), *arm.read_positions_and_velocities())
                return time.monotonic(), arm.read_positions(), arm.read_velocities()

            t1, p1, v1 = read()
            time.sleep(0.06)
            t2, p2, v2 = read()
            if combined:
                np.testing.assert_array_equal(arm.present, p2)  # the safety clamp sees these positions
            assert np.all(np.sign(v1) == np.sign(goal - start)), v1
            finite_difference = (p2 - p1) / (t2 - t1)
            # First-order motion slows down between the two reads: the difference lies between v2 and v1.
            lo, hi = np.minimum(np.abs(v1), np.abs(v2)), np.maximum(np.abs(v1), np.abs(v2))
            assert np.all(np.abs(finite_difference) > 0.7 * lo) and np.all(np.abs(finite_difference) < 1.3 * hi), (
                finite_difference, v1, v2)
        finally:
            arm.disconnect(disable_torque=False)
