"""Teleoperation input devices as TeleopSources: keyboard (terminal, evdev), gamepad (evdev, sensor_msgs/Joy),
phone (a served web page). Plain Python; the teleop node (nodes/teleop_node.py) wires them to ROS."""

from apprentice.teleop.device import DeviceInput, InputState
from apprentice.teleop.devices import DEVICE_SOURCES, DeviceOptions, make_device_source, open_device
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.mapping import DeviceMap, load_device_map
from apprentice.teleop.source import DeviceSource

__all__ = [
    "DEVICE_SOURCES",
    "DeviceInput",
    "DeviceMap",
    "DeviceOptions",
    "DeviceSource",
    "InputState",
    "TeleopError",
    "load_device_map",
    "make_device_source",
    "open_device",
]
