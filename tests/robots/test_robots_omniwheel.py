"""LeKiwi's base: omniwheel kinematics (twist <-> wheel speeds), odometry, and a scripted square driven
through the virtual base with the drift of the wheel odometry measured against the virtual shafts."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from apprentice.robots import Arm, RobotError, load_robot
from apprentice.robots.definition import BaseGeometry
from apprentice.robots.omniwheel import Odometry, OmniwheelKinematics
from apprentice.robots.virtual_arm import make_virtual_arm

LEKIWI = load_robot("lekiwi")


def test_lerobot_lekiwi_numbers() -> None:
    kinematics = OmniwheelKinematics(LEKIWI.base)
    # lerobot: angles (240, 0, 120) - 90 degrees, rows (cos a, sin a, 0.125), divided by r = 0.05 m
    forward = kinematics.wheel_speeds(0.1, 0.0, 0.0)
    np.testing.assert_allclose(forward, [-math.sqrt(3), 0.0, math.sqrt(3)], atol=1e-12)  # rad/s
    left = kinematics.wheel_speeds(0.0, 0.1, 0.0)
    np.testing.assert_allclose(left, [1.0, -2.0, 1.0], atol=1e-12)
    spin = kinematics.wheel_speeds(0.0, 0.0, math.radians(90))
    np.testing.assert_allclose(spin, [0.125 / 0.05 * math.pi / 2] * 3, atol=1e-12)


def test_twist_wheel_round_trip_and_scaling() -> None:
    kinematics = OmniwheelKinematics(LEKIWI.base)
    rng = np.random.default_rng(0)
    for vx, vy, wz in rng.uniform([-0.15, -0.15, -1.0], [0.15, 0.15, 1.0], size=(200, 3)):
        speeds = kinematics.wheel_speeds(vx, vy, wz)
        if np.max(np.abs(speeds)) < LEKIWI.base.max_wheel_speed:
            np.testing.assert_allclose(kinematics.body_twist(speeds), [vx, vy, wz], atol=1e-12)
    fast = kinematics.wheel_speeds(1.0, 0.5, 0.0)  # beyond the wheels: scaled down, direction kept
    assert np.max(np.abs(fast)) == pytest.approx(LEKIWI.base.max_wheel_speed)
    vx, vy, wz = kinematics.body_twist(fast)
    assert vy / vx == pytest.approx(0.5) and wz == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(RobotError, match="cannot drive every direction"):
        OmniwheelKinematics(BaseGeometry(wheel_angles_deg=(0.0, 0.0, 0.0)))
    with pytest.raises(RobotError, match="finite"):
        kinematics.wheel_speeds(float("nan"), 0.0, 0.0)


def test_odometry_integrates_a_constant_twist_exactly() -> None:
    odometry = Odometry()
    v, w = 0.2, 0.5  # a circle of radius 0.4 m
    for _ in range(100):
        odometry.update(v, 0.0, w, 0.1)  # 10 s
    theta = w * 10.0
    assert odometry.x == pytest.approx(v / w * math.sin(theta), abs=1e-9)
    assert odometry.y == pytest.approx(v / w * (1 - math.cos(theta)), abs=1e-9)
    assert odometry.theta == pytest.approx(math.atan2(math.sin(theta), math.cos(theta)), abs=1e-9)
    sideways = Odometry(theta=math.pi / 2)
    sideways.update(0.0, 0.1, 0.0, 1.0)  # left in the body frame is -x in the odom frame
    assert (sideways.x, sideways.y) == pytest.approx((-0.1, 0.0), abs=1e-12)
    _, _, z, w_ = sideways.quaternion()
    assert 2 * math.atan2(z, w_) == pytest.approx(math.pi / 2)


def _true_pose(start: np.ndarray, shafts: np.ndarray, kinematics: OmniwheelKinematics) -> np.ndarray:
    """Pose after a pure translation or rotation segment, from the wheels' total rotation (rad)."""
    dx, dy, dtheta = kinematics.inverse @ shafts  # a segment of one twist direction integrates exactly
    pose = Odometry(x=start[0], y=start[1], theta=start[2])
    pose.update(dx, dy, dtheta, 1.0)
    return np.array([pose.x, pose.y, pose.theta])


def test_scripted_square_through_the_virtual_base_reports_odometry_drift() -> None:
    """0.2 m sides at 0.2 m/s and 90-degree turns at 1.5 rad/s, stopping between segments. The truth is
    the virtual shafts' own rotation; the odometry is what the driver computes from Present_Velocity."""
    kinematics = OmniwheelKinematics(LEKIWI.base)
    with make_virtual_arm(LEKIWI, tau_s=0.03) as virtual:
        arm = Arm(LEKIWI, virtual.port)
        arm.connect()
        wheels = [virtual.motor(w.id) for w in LEKIWI.wheels]
        odometry, truth = Odometry(), np.zeros(3)
        segments = [((0.2, 0.0, 0.0), 1.0), ((0.0, 0.0, 1.5), math.pi / 3)] * 4
        t0 = time.monotonic()
        last_t, last_twist, reads = None, np.zeros(3), 0
        for twist, seconds in [*segments, ((0.0, 0.0, 0.0), 0.0)]:
            shafts_before = np.array([m.actual for m in wheels])
            arm.send_wheel_velocities(kinematics.wheel_speeds(*twist))
            end = time.monotonic() + seconds
            stop_at = None
            while True:
                now = time.monotonic()
                measured = np.array(kinematics.body_twist(arm.read_wheel_velocities()))
                if last_t is not None:
                    odometry.update(*(0.5 * (measured + last_twist)), now - last_t)
                last_t, last_twist, reads = now, measured, reads + 1
                if stop_at is None and now >= end:
                    arm.stop_wheels()
                    stop_at = now
                if stop_at is not None and now - stop_at > 0.25 and not np.any(measured):
                    break
                time.sleep(0.01)
            for m in wheels:
                m.step()
            shafts = (np.array([m.actual for m in wheels]) - shafts_before) * 2 * math.pi / 4096
            truth = _true_pose(truth, shafts, kinematics)
        elapsed = time.monotonic() - t0
        arm.disconnect()
    position_drift = math.hypot(odometry.x - truth[0], odometry.y - truth[1])
    error = odometry.theta - truth[2]
    heading_drift = abs(math.degrees(math.atan2(math.sin(error), math.cos(error))))
    closure = math.hypot(truth[0], truth[1])  # the commanded square closes; the real wheels nearly do
    report = {
        "path_m": round(odometry.distance, 4),
        "position_drift_m": round(position_drift, 5),
        "heading_drift_deg": round(heading_drift, 3),
        "square_closure_m": round(closure, 5),
        "odometry_hz": round(reads / elapsed, 1),
    }
    print(json.dumps(report))  # pytest -s shows it: the number the README quotes
    assert odometry.distance == pytest.approx(0.8, rel=0.15)  # 4 x 0.2 m (turns add a little noise)
    # Measured 0.3 mm / 0.05 deg at ~85 Hz; a loaded machine stretching the gaps between reads (the
    # 30 ms velocity lag is then integrated coarsely) has given up to ~3 cm / 4 deg.
    assert position_drift < 0.05 and heading_drift < 5.0
    # The lag delays each segment but keeps its length; a stop sent late by a loaded machine lengthens
    # a side (4-10 mm measured, 3 cm under load). A wrong turn sign or scale would leave it open by 0.2 m+.
    assert closure < 0.1
