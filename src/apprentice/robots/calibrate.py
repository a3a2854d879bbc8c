"""LeRobot's calibration procedure: centre the homing offsets, record each joint's range of motion.

1. torque off, calibration operating mode (and Dynamixel drive modes) written;
2. the user puts the arm in the middle of its range -> homing offsets so that pose reads half a turn;
3. the user moves every joint through its whole range while positions are sampled -> range_min/range_max
   (full-turn joints such as a free wrist roll get the whole 0..resolution-1);
4. offsets and limits written to the motors and returned for saving as LeRobot's JSON file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from apprentice.motors import MotorCalibration, MotorsBus
from apprentice.robots.arm import NO_SECONDARY_ID
from apprentice.robots.definition import RobotDefinition
from apprentice.robots.errors import RobotError

SampleCallback = Callable[[dict[str, int], dict[str, int], dict[str, int]], None]


def calibration_root() -> Path:
    """LeRobot's calibration directory, so files written by `lerobot-calibrate` are found as they are."""
    if env := os.environ.get("HF_LEROBOT_CALIBRATION"):
        return Path(env).expanduser()
    home = os.environ.get("HF_LEROBOT_HOME") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "lerobot"
    return Path(home).expanduser() / "calibration"


def default_calibration_path(definition: RobotDefinition, robot_id: str) -> Path:
    """Where the newest lerobot reads (and we write): <root>/<robots|teleoperators>/<calibration_name>/<id>.json."""
    return calibration_root() / _kind(definition) / definition.calibration_name / f"{robot_id}.json"


def legacy_calibration_path(definition: RobotDefinition, robot_id: str) -> Path | None:
    """lerobot < 0.4.3's file, <root>/<kind>/<type>/<id>.json, where that folder differs (so100/so101 arms)."""
    if definition.calibration_name == definition.type:
        return None
    return calibration_root() / _kind(definition) / definition.type / f"{robot_id}.json"


def find_calibration_file(definition: RobotDefinition, robot_id: str) -> Path | None:
    """The newest lerobot's file if it exists, else the pre-0.4.3 one if that exists, else None."""
    for path in (default_calibration_path(definition, robot_id), legacy_calibration_path(definition, robot_id)):
        if path is not None and path.is_file():
            return path
    return None


def _kind(definition: RobotDefinition) -> str:
    # lerobot files arms it drives under robots/ and arms it reads (teleoperators) under teleoperators/.
    return "robots" if definition.role == "follower" else "teleoperators"


def run_calibration(
    bus: MotorsBus,
    definition: RobotDefinition,
    *,
    wait_for_middle: Callable[[], None],
    recording_done: Callable[[], bool],
    on_sample: SampleCallback | None = None,
    period_s: float = 0.02,
) -> dict[str, MotorCalibration]:
    """Calibrate the connected `bus` interactively or not (the two callables decide); returns the result.

    Shadow motors are calibrated like joints (unlinked from their primaries meanwhile); wheels get the
    whole turn and no homing, as lerobot's LeKiwi; `calibration.factory` robots (OMX) skip the motion.
    """
    shadows = [s.name for s in definition.shadows]
    names = [*definition.joint_names, *shadows]
    bus.disable_torque()
    for name in shadows:
        bus.write("Secondary_ID", name, NO_SECONDARY_ID, normalize=False)
    for name in names:
        bus.write("Operating_Mode", name, definition.calibration_operating_mode, normalize=False)
        if definition.vendor == "dynamixel":
            bus.write("Drive_Mode", name, definition.calibration_drive_modes.get(name, 0), normalize=False)
    if definition.calibration_factory:
        return _write_factory_calibration(bus, definition)
    wait_for_middle()
    offsets = bus.set_half_turn_homings(names)
    recorded = [n for n in names if n not in definition.full_turn_joints]
    start = {n: int(v) for n, v in bus.sync_read("Present_Position", recorded, normalize=False).items()}
    mins, maxes = dict(start), dict(start)
    while not recording_done():
        positions = {n: int(v) for n, v in bus.sync_read("Present_Position", recorded, normalize=False).items()}
        for n, value in positions.items():
            mins[n] = min(mins[n], value)
            maxes[n] = max(maxes[n], value)
        if on_sample is not None:
            on_sample(mins, positions, maxes)
        time.sleep(period_s)
    still = [n for n in recorded if mins[n] == maxes[n]]
    if still:
        raise RobotError(
            f"joint(s) {still} of {definition.type} on {bus.port} did not move while recording; "
            "move every joint through its whole range before stopping"
        )
    calibration = {}
    for name in names:
        resolution = bus.spec(name).resolution
        full_turn = name in definition.full_turn_joints
        calibration[name] = MotorCalibration(
            id=bus.motors[name].id,
            drive_mode=definition.calibration_drive_modes.get(name, 0),
            homing_offset=int(offsets[name]),
            range_min=0 if full_turn else mins[name],
            range_max=resolution - 1 if full_turn else maxes[name],
        )
    calibration.update(_wheel_calibration(bus, definition))
    bus.write_calibration(calibration)
    return calibration


def _wheel_calibration(bus: MotorsBus, definition: RobotDefinition) -> dict[str, MotorCalibration]:
    return {
        w.name: MotorCalibration(w.id, 0, 0, 0, bus.spec(w.name).resolution - 1) for w in definition.wheels
    }


def _write_factory_calibration(bus: MotorsBus, definition: RobotDefinition) -> dict[str, MotorCalibration]:
    """ROBOTIS ships OMX arms assembled at the servos' zero: homing offsets from the YAML, the whole turn."""
    calibration = {
        name: MotorCalibration(
            id=bus.motors[name].id,
            drive_mode=definition.calibration_drive_modes.get(name, 0),
            homing_offset=definition.calibration_homing_offsets.get(name, 0),
            range_min=0,
            range_max=bus.spec(name).resolution - 1,
        )
        for name in [*definition.joint_names, *(s.name for s in definition.shadows)]
    }
    calibration.update(_wheel_calibration(bus, definition))
    bus.write_calibration(calibration)
    return calibration
