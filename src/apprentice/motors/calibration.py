"""LeRobot-compatible calibration: the JSON file, and raw ticks <-> normalized values / radians.

The file is LeRobot's, byte-compatible in content: one object per motor name with `id`, `drive_mode`,
`homing_offset`, `range_min`, `range_max` (all ints). A file written by `lerobot-calibrate` loads here
unchanged and ours loads in LeRobot. Normalization follows LeRobot's MotorNormMode:
- DEGREES:        (raw - mid) * 360 / (resolution - 1), mid = (range_min + range_max) / 2
- RANGE_M100_100: raw clipped to [range_min, range_max] mapped onto -100..100 (drive_mode flips it)
- RANGE_0_100:    same onto 0..100 (grippers)
Radians (what ROS topics carry) are DEGREES in radians for every joint, grippers included.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from apprentice.motors.errors import BusError

_FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


class MotorNormMode(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11; we support 3.10
    RANGE_0_100 = "range_0_100"
    RANGE_M100_100 = "range_m100_100"
    DEGREES = "degrees"


@dataclass
class MotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    def __post_init__(self) -> None:
        if self.range_max <= self.range_min:
            raise BusError(
                f"calibration of motor id {self.id}: range_max ({self.range_max}) must exceed range_min "
                f"({self.range_min}); recalibrate with `apprentice calibrate`"
            )

    @property
    def mid(self) -> float:
        return (self.range_min + self.range_max) / 2


def load_calibration(path: str | Path) -> dict[str, MotorCalibration]:
    """Read a LeRobot calibration JSON file (motor name -> MotorCalibration)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BusError(f"calibration file {path} does not exist; run `apprentice calibrate` first") from None
    except json.JSONDecodeError as exc:
        raise BusError(f"calibration file {path} is not valid JSON ({exc}); recalibrate or fix it") from None
    if not isinstance(data, dict) or not data:
        raise BusError(f"calibration file {path} must be a JSON object of motor name -> calibration")
    calibration = {}
    for motor, entry in data.items():
        missing = [f for f in _FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise BusError(f"calibration file {path}: motor '{motor}' lacks field(s) {missing}")
        bad = [f for f in _FIELDS if not isinstance(entry[f], int) or isinstance(entry[f], bool)]
        if bad:
            raise BusError(f"calibration file {path}: motor '{motor}' field(s) {bad} must be integers")
        try:
            calibration[motor] = MotorCalibration(**{f: entry[f] for f in _FIELDS})
        except BusError as exc:
            raise BusError(f"calibration file {path}: motor '{motor}': {exc}") from None
    return calibration


def save_calibration(path: str | Path, calibration: dict[str, MotorCalibration]) -> Path:
    """Write the file atomically (temp file + rename): a crash never leaves a half-written calibration."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({motor: asdict(cal) for motor, cal in calibration.items()}, indent=4)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def normalize(raw: float, cal: MotorCalibration, mode: MotorNormMode, resolution: int, apply_drive_mode: bool) -> float:
    """Raw register ticks -> LeRobot's normalized value (see module docstring)."""
    inverted = apply_drive_mode and bool(cal.drive_mode)
    if mode is MotorNormMode.DEGREES:
        return (raw - cal.mid) * 360.0 / (resolution - 1)
    bounded = min(cal.range_max, max(cal.range_min, raw))
    fraction = (bounded - cal.range_min) / (cal.range_max - cal.range_min)
    if mode is MotorNormMode.RANGE_M100_100:
        value = fraction * 200.0 - 100.0
        return -value if inverted else value
    value = fraction * 100.0
    return 100.0 - value if inverted else value


def unnormalize(
    value: float, cal: MotorCalibration, mode: MotorNormMode, resolution: int, apply_drive_mode: bool
) -> int:
    """LeRobot's normalized value -> raw register ticks (inverse of `normalize`, truncated like LeRobot)."""
    inverted = apply_drive_mode and bool(cal.drive_mode)
    if mode is MotorNormMode.DEGREES:
        return int(value * (resolution - 1) / 360.0 + cal.mid)
    if mode is MotorNormMode.RANGE_M100_100:
        value = min(100.0, max(-100.0, -value if inverted else value))
        return int((value + 100.0) / 200.0 * (cal.range_max - cal.range_min) + cal.range_min)
    value = min(100.0, max(0.0, 100.0 - value if inverted else value))
    return int(value / 100.0 * (cal.range_max - cal.range_min) + cal.range_min)


def ticks_to_radians(raw: float, cal: MotorCalibration, resolution: int) -> float:
    """Raw ticks -> radians about the middle of the calibrated range (LeRobot DEGREES, in radians)."""
    return (raw - cal.mid) * 2.0 * math.pi / (resolution - 1)


def radians_to_ticks(rad: float, cal: MotorCalibration, resolution: int) -> int:
    """Radians -> raw ticks, rounded to the nearest tick (no clamping: the caller applies limits)."""
    return round(rad * (resolution - 1) / (2.0 * math.pi) + cal.mid)
