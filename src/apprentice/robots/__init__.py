"""Robot definitions (config/robots/*.yaml), arms in joint space with safety clamps, and calibration.
No ROS imports."""

from apprentice.robots.arm import Arm
from apprentice.robots.bimanual import BimanualArm, BimanualDefinition, load_definition
from apprentice.robots.calibrate import (
    calibration_root,
    default_calibration_path,
    find_calibration_file,
    legacy_calibration_path,
    run_calibration,
)
from apprentice.robots.definition import Joint, RobotDefinition, load_robot
from apprentice.robots.errors import RobotError
from apprentice.robots.units import lerobot_to_radians, radians_to_lerobot

__all__ = [
    "Arm",
    "BimanualArm",
    "BimanualDefinition",
    "Joint",
    "RobotDefinition",
    "RobotError",
    "calibration_root",
    "default_calibration_path",
    "find_calibration_file",
    "legacy_calibration_path",
    "lerobot_to_radians",
    "load_definition",
    "load_robot",
    "radians_to_lerobot",
    "run_calibration",
]
