"""Teleoperation: the follower arm's driver, the leader arm's teleop node and the cameras.

    ros2 launch apprentice teleop.launch.py robot_type:=so101 follower_port:=/dev/ttyACM0 \
        leader_port:=/dev/ttyACM1 cameras:=front:/dev/video0,wrist:/dev/video2

`source` picks the teleop input: leader_arm (default), keyboard (this terminal, or device:=/dev/pts/N),
keyboard_evdev, gamepad_evdev (device:=/dev/input/eventN, "" = the first found), joy (any sensor_msgs/Joy
on joy_topic, e.g. from joy_node), phone (a page on http://phone_host:phone_port/; phone_host:=0.0.0.0
for the LAN, phone_certfile/phone_keyfile for HTTPS); device_config names the map in config/teleop/.

    ros2 launch apprentice teleop.launch.py follower_port:=virtual source:=joy device_config:=gamepad_joints

`cameras` is a comma-separated list of name:source (source: /dev/videoN, an index, a video file or
`synthetic`); each camera publishes cameras/<name>/image_raw. `port:=virtual` runs an arm on the
virtual servo bus (no hardware). Node parameters come from `config` (default config/teleop.yaml).
"""

from __future__ import annotations

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from launch import LaunchDescription

ARGUMENTS = {
    "robot_type": ("so101", "robot family: so100 | so101 | koch | omx | bi_so101 (-> <type>_follower, <type>_leader)"),
    "follower_port": ("/dev/ttyACM0", "follower arm serial port, or `virtual`"),
    "leader_port": ("/dev/ttyACM1", "leader arm serial port, or `virtual`"),
    "robot_id": ("default", "calibration id (LeRobot's --robot.id)"),
    "cameras": ("", "comma-separated name:source list, e.g. front:/dev/video0,wrist:synthetic"),
    "namespace": ("", "ROS namespace for every node (one robot per namespace)"),
    "config": ("", "parameter file; default: <share>/config/teleop.yaml"),
    "source": ("leader_arm", "teleop input: leader_arm | keyboard | keyboard_evdev | gamepad_evdev | joy | phone"),
    "device_config": ("", "device map: a name in config/teleop/ (keyboard_joints, gamepad, ...) or a YAML path"),
    "device": ("", "keyboard: a terminal path (default: stdin); *_evdev: /dev/input/eventN (default: find one)"),
    "joy_topic": ("joy", "sensor_msgs/Joy topic for source:=joy"),
    "phone_host": ("127.0.0.1", "phone page address; 0.0.0.0 to serve the LAN"),
    "phone_port": ("8766", "phone page port"),
    "phone_certfile": ("", "HTTPS certificate for the phone page (phones need HTTPS for motion sensors)"),
    "phone_keyfile": ("", "HTTPS private key for the phone page"),
}
DEVICE_ARGUMENTS = ("source", "device_config", "device", "joy_topic", "phone_host", "phone_certfile", "phone_keyfile")


def config_file(context) -> str:
    given = LaunchConfiguration("config").perform(context)
    return given or os.path.join(get_package_share_directory("apprentice"), "config", "teleop.yaml")


def camera_nodes(context, config: str) -> list[Node]:
    """One camera_node per `cameras` entry, with the config's `camera` defaults."""
    with open(config) as f:
        defaults = (yaml.safe_load(f) or {}).get("camera", {}).get("ros__parameters", {})
    nodes = []
    for entry in LaunchConfiguration("cameras").perform(context).split(","):
        if not entry.strip():
            continue
        name, _, source = entry.strip().partition(":")
        params = {**defaults, "name": name, "source": source or "synthetic"}
        nodes.append(
            Node(
                package="apprentice",
                executable="camera_node",
                name=f"camera_{name}",
                parameters=[params],
                output="screen",
            )
        )
    return nodes


def robot_nodes(context) -> list:
    config = config_file(context)
    robot = LaunchConfiguration("robot_type").perform(context)
    robot_id = LaunchConfiguration("robot_id").perform(context)
    driver = Node(
        package="apprentice",
        executable="driver_node",
        name="driver",
        output="screen",
        parameters=[
            config,
            {
                "robot_type": f"{robot}_follower",
                "robot_id": robot_id,
                "port": LaunchConfiguration("follower_port").perform(context),
            },
        ],
    )
    teleop = Node(
        package="apprentice",
        executable="teleop_node",
        name="teleop",
        output="screen",
        parameters=[
            config,
            {
                "leader_robot_type": f"{robot}_leader",
                "leader_robot_id": robot_id,
                "leader_port": LaunchConfiguration("leader_port").perform(context),
                "robot_type": f"{robot}_follower",
                "phone_port": int(LaunchConfiguration("phone_port").perform(context)),
                **{name: LaunchConfiguration(name).perform(context) for name in DEVICE_ARGUMENTS},
            },
        ],
    )
    namespace = LaunchConfiguration("namespace").perform(context)
    return [GroupAction([PushRosNamespace(namespace), driver, teleop, *camera_nodes(context, config)])]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=robot_nodes)]
    )
