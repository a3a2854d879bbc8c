"""Radians <-> LeRobot's normalized values for a calibrated arm."""

from __future__ import annotations

import numpy as np
import pytest

from apprentice.motors import MotorCalibration
from apprentice.robots import RobotError, load_robot
from apprentice.robots.units import lerobot_to_radians, radians_to_lerobot

DEFINITION = load_robot("so101_follower")
CALIBRATION = {n: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, n in enumerate(DEFINITION.joint_names)}
TICK = 2 * np.pi / 4095


def test_lerobot_values_of_known_poses() -> None:
    mid = np.zeros(6)
    np.testing.assert_allclose(radians_to_lerobot(DEFINITION, CALIBRATION, mid), [0, 0, 0, 0, 0, 50])
    np.testing.assert_allclose(radians_to_lerobot(DEFINITION, CALIBRATION, mid, use_degrees=True), [0, 0, 0, 0, 0, 50])
    top = np.full(6, 1000 * TICK)  # +1000 ticks: the top of every calibrated range
    np.testing.assert_allclose(radians_to_lerobot(DEFINITION, CALIBRATION, top), [100] * 5 + [100])
    np.testing.assert_allclose(
        radians_to_lerobot(DEFINITION, CALIBRATION, top, use_degrees=True)[:5], 1000 * 360 / 4095
    )
    flipped = dict(CALIBRATION, shoulder_pan=MotorCalibration(1, 1, 0, 1000, 3000))
    assert radians_to_lerobot(DEFINITION, flipped, top)[0] == pytest.approx(-100)  # Feetech: software flip


def test_roundtrip_within_a_tick_and_errors() -> None:
    rng = np.random.default_rng(0)
    for use_degrees in (False, True):
        rad = rng.uniform(-900, 900, size=6) * TICK
        back = lerobot_to_radians(
            DEFINITION,
            CALIBRATION,
            radians_to_lerobot(DEFINITION, CALIBRATION, rad, use_degrees=use_degrees),
            use_degrees=use_degrees,
        )
        np.testing.assert_allclose(back, rad, atol=1.01 * TICK)  # LeRobot truncates to whole ticks
    with pytest.raises(RobotError, match="expected 6 values"):
        radians_to_lerobot(DEFINITION, CALIBRATION, np.zeros(5))
    with pytest.raises(RobotError, match=r"lacks joint\(s\) \['gripper'\]"):
        radians_to_lerobot(DEFINITION, {k: v for k, v in CALIBRATION.items() if k != "gripper"}, np.zeros(6))
