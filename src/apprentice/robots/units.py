"""Joint radians (ROS topics) <-> LeRobot's normalized motor values (LeRobot datasets and policies).

LeRobot arms publish `<joint>.pos` as: DEGREES for body joints when `use_degrees=True`, otherwise
RANGE_M100_100; grippers always RANGE_0_100 — all relative to the arm's calibration. Radians here are
LeRobot's DEGREES in radians, so a dataset recorded with ROS can store exactly what `lerobot-record`
would have stored for the same arm and calibration file, and a LeRobot-trained policy's actions map back.
"""

from __future__ import annotations

import numpy as np

from apprentice.motors import (
    BUS_CLASSES,
    MotorCalibration,
    MotorNormMode,
    model_spec,
    normalize,
    ticks_to_radians,
    unnormalize,
)
from apprentice.robots.definition import RobotDefinition
from apprentice.robots.errors import RobotError


def _modes(definition: RobotDefinition, use_degrees: bool) -> list[MotorNormMode]:
    body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
    return [body if j.norm_mode is MotorNormMode.DEGREES else j.norm_mode for j in definition.joints]


def _check(definition: RobotDefinition, calibration: dict[str, MotorCalibration], values: np.ndarray) -> None:
    missing = sorted(set(definition.joint_names) - set(calibration))
    if missing:
        raise RobotError(f"{definition.type}: calibration lacks joint(s) {missing}")
    if np.shape(values) != (len(definition.joints),):
        raise RobotError(
            f"{definition.type}: expected {len(definition.joints)} values for "
            f"{definition.joint_names}, got shape {np.shape(values)}"
        )


def radians_to_lerobot(
    definition: RobotDefinition,
    calibration: dict[str, MotorCalibration],
    positions: np.ndarray,
    *,
    use_degrees: bool = False,
) -> np.ndarray:
    """Joint radians -> the values LeRobot's robot class would report for the same motor positions."""
    _check(definition, calibration, positions)
    drive = BUS_CLASSES[definition.vendor].apply_drive_mode
    out = []
    for joint, mode, rad in zip(definition.joints, _modes(definition, use_degrees), positions):
        cal, resolution = calibration[joint.name], model_spec(joint.model).resolution
        ticks = rad * (resolution - 1) / (2 * np.pi) + cal.mid
        out.append(normalize(ticks, cal, mode, resolution, drive))
    return np.asarray(out, dtype=np.float64)


def lerobot_to_radians(
    definition: RobotDefinition,
    calibration: dict[str, MotorCalibration],
    values: np.ndarray,
    *,
    use_degrees: bool = False,
) -> np.ndarray:
    """LeRobot motor values (e.g. a LeRobot policy's action) -> joint radians, via the same ticks."""
    _check(definition, calibration, values)
    drive = BUS_CLASSES[definition.vendor].apply_drive_mode
    out = []
    for joint, mode, value in zip(definition.joints, _modes(definition, use_degrees), values):
        cal, resolution = calibration[joint.name], model_spec(joint.model).resolution
        out.append(ticks_to_radians(unnormalize(float(value), cal, mode, resolution, drive), cal, resolution))
    return np.asarray(out, dtype=np.float64)
