"""Teleoperation: input devices and end-effector control (IK/FK from config/urdf). No ROS imports."""

from apprentice.teleop.end_effector import (
    EndEffectorConfig,
    EndEffectorController,
    EndEffectorDelta,
    StepReport,
    WorkspaceBounds,
)
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.kinematics import ArmKinematics, IKResult, KinematicsConfig, load_kinematics

__all__ = [
    "ArmKinematics",
    "EndEffectorConfig",
    "EndEffectorController",
    "EndEffectorDelta",
    "IKResult",
    "KinematicsConfig",
    "StepReport",
    "TeleopError",
    "WorkspaceBounds",
    "load_kinematics",
]
