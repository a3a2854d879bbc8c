"""Teleoperation: input devices (keyboard, gamepad/Joy, phone) as TeleopSources and end-effector control
(IK/FK from config/urdf). No ROS imports; the teleop node (nodes/teleop_node.py) wires them to ROS."""

from apprentice.teleop.device import DeviceInput, InputState
from apprentice.teleop.devices import DEVICE_SOURCES, DeviceOptions, make_device_source, open_device
from apprentice.teleop.end_effector import (
    EndEffectorConfig,
    EndEffectorController,
    EndEffectorDelta,
    StepReport,
    WorkspaceBounds,
)
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.kinematics import ArmKinematics, IKResult, KinematicsConfig, load_kinematics
from apprentice.teleop.mapping import DeviceMap, load_device_map
from apprentice.teleop.source import DeviceSource

__all__ = [
    "DEVICE_SOURCES",
    "ArmKinematics",
    "DeviceInput",
    "DeviceMap",
    "DeviceOptions",
    "DeviceSource",
    "EndEffectorConfig",
    "EndEffectorController",
    "EndEffectorDelta",
    "IKResult",
    "InputState",
    "KinematicsConfig",
    "StepReport",
    "TeleopError",
    "WorkspaceBounds",
    "load_device_map",
    "load_kinematics",
    "make_device_source",
    "open_device",
]
