"""Opening a device by name and wrapping it as a TeleopSource (what the teleop node's `source` selects)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apprentice.resources import config_path
from apprentice.robots.definition import RobotDefinition
from apprentice.teleop.device import InputDevice
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.mapping import DeviceMap, load_device_map
from apprentice.teleop.source import DeviceSource

# source -> its default device map in config/teleop/
DEVICE_SOURCES = {
    "keyboard": "keyboard",  # the terminal the node runs in (or device:=/dev/pts/N)
    "keyboard_evdev": "keyboard",  # /dev/input/event* (device:= path, "" = the first keyboard)
    "gamepad_evdev": "gamepad",
    "joy": "gamepad",  # any sensor_msgs/Joy topic (joy_topic)
    "phone": "phone",  # the page this node serves
}


@dataclass
class DeviceOptions:
    """Per-device settings (teleop node parameters of the same names)."""

    device: str = ""  # keyboard: a tty path ("" = stdin); *_evdev: /dev/input/eventN ("" = find one)
    joy_topic: str = "joy"
    phone_host: str = "127.0.0.1"  # 0.0.0.0 to let a phone on the LAN connect
    phone_port: int = 8766
    phone_certfile: str = ""  # HTTPS (phones give DeviceOrientation only to secure pages)
    phone_keyfile: str = ""
    key_hold_s: float = 0.12  # terminal keys: how long one press counts as held


def device_map_path(source: str, given: str = "") -> Path:
    """The device map: `given` (a path, or a name in config/teleop/), else the source's default."""
    if source not in DEVICE_SOURCES:
        raise TeleopError(f"teleop: source must be leader_arm or one of {sorted(DEVICE_SOURCES)}, got '{source}'")
    if given and not given.endswith((".yaml", ".yml")):
        return config_path("teleop", f"{given}.yaml")
    return Path(given) if given else config_path("teleop", f"{DEVICE_SOURCES[source]}.yaml")


def open_device(source: str, device_map: DeviceMap, options: DeviceOptions) -> InputDevice:
    try:
        return _open_device(source, device_map, options)
    except ImportError as exc:  # evdev / websockets come with the `teleop` extra
        raise TeleopError(f"teleop: source {source} needs {exc.name}: pip install 'apprentice[teleop]'") from exc


def _open_device(source: str, device_map: DeviceMap, options: DeviceOptions) -> InputDevice:
    if source == "keyboard":
        from apprentice.teleop.keyboard import TerminalKeyboard

        return TerminalKeyboard(options.device, hold_s=options.key_hold_s)
    if source == "keyboard_evdev":
        from apprentice.teleop.evdev_reader import find_device
        from apprentice.teleop.keyboard import EvdevKeyboard

        return EvdevKeyboard(find_device(options.device, "keyboard"))
    if source == "gamepad_evdev":
        from apprentice.teleop.evdev_reader import find_device
        from apprentice.teleop.gamepad import EvdevGamepad

        return EvdevGamepad(find_device(options.device, "gamepad"), device_map)
    if source == "joy":
        from apprentice.teleop.gamepad import JoyInput

        return JoyInput(device_map, options.joy_topic)
    if source == "phone":
        from apprentice.teleop.phone import PhoneServer

        return PhoneServer(options.phone_host, options.phone_port, options.phone_certfile, options.phone_keyfile)
    raise TeleopError(f"teleop: source must be leader_arm or one of {sorted(DEVICE_SOURCES)}, got '{source}'")


def make_device_source(
    source: str,
    robot: RobotDefinition,
    map_file: str = "",
    options: DeviceOptions | None = None,
    max_relative_target: float = 0.0,
) -> DeviceSource:
    """The named device driving `robot` (the follower) through its map; end-effector maps use IK."""
    device_map = load_device_map(device_map_path(source, map_file))
    controller = make_delta = None
    if device_map.mode == "end_effector":
        controller, make_delta = _end_effector(robot)
    names = [j.name for j in robot.joints]
    device = open_device(source, device_map, options or DeviceOptions())
    try:
        return DeviceSource(
            device,
            device_map,
            names,
            lower=np.array([j.lower for j in robot.joints]),
            upper=np.array([j.upper for j in robot.joints]),
            gripper_joint=robot.gripper,
            max_relative_target=max_relative_target,
            controller=controller,
            make_delta=make_delta,
        )
    except TeleopError:
        device.close()
        raise


def _end_effector(robot: RobotDefinition) -> tuple[object, object]:
    try:
        from apprentice.teleop.end_effector import EndEffectorController, EndEffectorDelta
        from apprentice.teleop.kinematics import load_kinematics
    except ImportError as exc:
        raise TeleopError(
            f"teleop: end-effector device maps need pinocchio ({exc}): pip install 'apprentice[teleop]', "
            "or use a joint map such as device_config:=keyboard_joints"
        ) from exc
    return EndEffectorController(load_kinematics(robot), robot), EndEffectorDelta
