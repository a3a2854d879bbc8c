"""Recording: teleoperation (teleop.launch.py) plus the recorder node.

    ros2 launch apprentice record.launch.py robot_type:=so101 follower_port:=/dev/ttyACM0 \
        leader_port:=/dev/ttyACM1 cameras:=front:/dev/video0,wrist:/dev/video2 \
        contract:=so101_two_cameras dataset_root:=~/datasets/pick_cube num_episodes:=50

Episodes are timed (episode_time_s / reset_time_s) and controlled through the recorder's services
(recorder/start_episode, stop_episode, rerecord_episode, discard_episode); status on recorder/status.
With a device source (source:=joy, phone, keyboard_evdev, ...) the device's episode buttons call them.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from launch import LaunchDescription

TELEOP_ARGUMENTS = (
    "robot_type",
    "follower_port",
    "leader_port",
    "robot_id",
    "cameras",
    "namespace",
    "config",
    "source",
    "device_config",
    "device",
    "joy_topic",
    "phone_host",
    "phone_port",
    "phone_certfile",
    "phone_keyfile",
)
ARGUMENTS = {
    "robot_type": ("so101", "robot family: so100 | so101 | koch"),
    "follower_port": ("/dev/ttyACM0", "follower arm serial port, or `virtual`"),
    "leader_port": ("/dev/ttyACM1", "leader arm serial port, or `virtual`"),
    "robot_id": ("default", "calibration id (LeRobot's --robot.id)"),
    "cameras": ("", "comma-separated name:source list, e.g. front:/dev/video0,wrist:/dev/video2"),
    "namespace": ("", "ROS namespace for every node"),
    "config": ("", "teleop parameter file; default: <share>/config/teleop.yaml"),
    "source": ("leader_arm", "teleop input: leader_arm | keyboard | keyboard_evdev | gamepad_evdev | joy | phone"),
    "device_config": ("", "device map: a name in config/teleop/ or a YAML path"),
    "device": ("", "keyboard: a terminal path; *_evdev: /dev/input/eventN"),
    "joy_topic": ("joy", "sensor_msgs/Joy topic for source:=joy"),
    "phone_host": ("127.0.0.1", "phone page address; 0.0.0.0 to serve the LAN"),
    "phone_port": ("8766", "phone page port"),
    "phone_certfile": ("", "HTTPS certificate for the phone page"),
    "phone_keyfile": ("", "HTTPS private key for the phone page"),
    "contract": ("so101_two_cameras", "contract name in config/contracts/ or a YAML path"),
    "dataset_root": ("", "dataset directory (created; with resume:=true appended to)"),
    "num_episodes": ("10", "episodes to record (0 = until stopped)"),
    "episode_time_s": ("60.0", "seconds per episode"),
    "reset_time_s": ("60.0", "seconds to reset the scene between episodes"),
    "task": ("", "task string; default: the contract's"),
    "resume": ("false", "append to an existing dataset"),
    "record_config": ("", "recorder parameter file; default: <share>/config/record.yaml"),
    "live_view": ("false", "also start the viewer node: a live Foxglove view on ws://127.0.0.1:<live_view_port>"),
    "live_view_port": ("8765", "port of the live view's WebSocket server (127.0.0.1 only)"),
}

RECORDER_STOP_S = "60"  # seconds between SIGINT and SIGTERM for the recorder (see recorder())


def share(*parts: str) -> str:
    return os.path.join(get_package_share_directory("apprentice"), *parts)


def viewer(arg: dict, contract: str) -> list:
    """The viewer node when live_view:=true: the contract's topics, live in Foxglove."""
    if arg["live_view"].lower() != "true":
        return []
    params = {"contract": contract, "port": int(arg["live_view_port"])}
    return [Node(package="apprentice", executable="viewer_node", name="viewer", output="screen", parameters=[params])]


def recorder(context) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    if not arg["dataset_root"]:
        raise RuntimeError("record.launch.py: give dataset_root:=<dataset directory>")
    contract = arg["contract"]
    if not contract.endswith((".yaml", ".yml")):
        contract = share("config", "contracts", f"{contract}.yaml")
    params = {
        "contract": contract,
        "root": os.path.expanduser(arg["dataset_root"]),
        "num_episodes": int(arg["num_episodes"]),
        "episode_time_s": float(arg["episode_time_s"]),
        "reset_time_s": float(arg["reset_time_s"]),
        "resume": arg["resume"].lower() == "true",
    }
    if arg["task"]:
        params["task"] = arg["task"]
    node = Node(
        package="apprentice",
        executable="recorder_node",
        name="recorder",
        output="screen",
        # On Ctrl-C the recorder saves the episode in progress and converts it (video encoding): give it
        # RECORDER_STOP_S, not launch's default 5 s before SIGTERM (a killed conversion reruns on restart).
        sigterm_timeout=RECORDER_STOP_S,
        parameters=[arg["record_config"] or share("config", "record.yaml"), params],
    )
    return [GroupAction([PushRosNamespace(arg["namespace"]), node, *viewer(arg, contract)])]


def generate_launch_description() -> LaunchDescription:
    teleop = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(share("launch", "teleop.launch.py")),
        launch_arguments={name: LaunchConfiguration(name) for name in TELEOP_ARGUMENTS}.items(),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [teleop, OpaqueFunction(function=recorder)]
    )
