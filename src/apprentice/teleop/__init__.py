"""Teleoperation: input devices (keyboard, gamepad/Joy, phone) as TeleopSources and end-effector control
(IK/FK from config/urdf). No ROS imports; the teleop node (nodes/teleop_node.py) wires them to ROS.

The kinematics names load on first use (PEP 562): a leader-arm or joint-mode teleop node does not need
pinocchio (the `teleop` extra) installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from apprentice.teleop.device import DeviceInput, InputState
from apprentice.teleop.devices import DEVICE_SOURCES, DeviceOptions, make_device_source, open_device
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.mapping import DeviceMap, load_device_map
from apprentice.teleop.source import DeviceSource

_LAZY = {
    "EndEffectorConfig": "end_effector",
    "EndEffectorController": "end_effector",
    "EndEffectorDelta": "end_effector",
    "StepReport": "end_effector",
    "WorkspaceBounds": "end_effector",
    "ArmKinematics": "kinematics",
    "IKResult": "kinematics",
    "KinematicsConfig": "kinematics",
    "load_kinematics": "kinematics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"apprentice.teleop.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'apprentice.teleop' has no attribute {name!r}")


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
