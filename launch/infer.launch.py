"""Deployment: the follower arm's driver, the cameras and the policy node (no leader arm).

    ros2 launch apprentice infer.launch.py robot_type:=so101 follower_port:=/dev/ttyACM0 \
        cameras:=front:/dev/video0,wrist:/dev/video2 contract:=so101_two_cameras \
        policy_path:=outputs/train/act/checkpoints/last/pretrained_model
    ros2 service call /policy_node/enable std_srvs/srv/SetBool "{data: true}"

The policy node reads the contract's observation topics and commands the contract's command topic;
it starts disabled (config/infer.yaml) unless `enabled:=true`.
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
    "robot_type": ("so101", "robot family: so100 | so101 | koch (-> <type>_follower)"),
    "follower_port": ("/dev/ttyACM0", "follower arm serial port, or `virtual`"),
    "robot_id": ("default", "calibration id (LeRobot's --robot.id)"),
    "cameras": ("", "comma-separated name:source list, e.g. front:/dev/video0,wrist:/dev/video2"),
    "contract": ("so101_two_cameras", "contract name in config/contracts/ or a YAML path"),
    "policy_path": ("", "checkpoint: a pretrained_model/ directory (ours or lerobot-train's)"),
    "device": ("auto", "cpu | cuda | auto"),
    "task": ("", "language instruction; default: the contract's task"),
    "enabled": ("false", "start commanding at once (else call ~/enable)"),
    "namespace": ("", "ROS namespace for every node"),
    "config": ("", "parameter file for the driver and cameras; default: <share>/config/teleop.yaml"),
    "policy_config": ("", "parameter file for the policy node; default: <share>/config/infer.yaml"),
    "live_view": ("false", "also start the viewer node: a live Foxglove view on ws://127.0.0.1:<live_view_port>"),
    "live_view_port": ("8765", "port of the live view's WebSocket server (127.0.0.1 only)"),
}


def share(*parts: str) -> str:
    return os.path.join(get_package_share_directory("apprentice"), *parts)


def viewer(arg: dict) -> list:
    """The viewer node when live_view:=true: observations, the policy's commands, live in Foxglove."""
    if arg["live_view"].lower() != "true":
        return []
    params = {"contract": arg["contract"], "port": int(arg["live_view_port"])}
    return [Node(package="apprentice", executable="viewer_node", name="viewer", output="screen", parameters=[params])]


def nodes(context) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config = arg["config"] or share("config", "teleop.yaml")
    policy_config = arg["policy_config"] or share("config", "infer.yaml")
    if not arg["policy_path"]:
        raise RuntimeError("infer.launch.py: give policy_path:=<.../pretrained_model>")
    driver = Node(
        package="apprentice",
        executable="driver_node",
        name="driver",
        output="screen",
        parameters=[
            config,
            {
                "robot_type": f"{arg['robot_type']}_follower",
                "robot_id": arg["robot_id"],
                "port": arg["follower_port"],
            },
        ],
    )
    policy = {
        "policy_path": arg["policy_path"],
        "contract": arg["contract"],
        "device": arg["device"],
        "robot": f"{arg['robot_type']}_follower",
        "enabled": arg["enabled"].lower() == "true",
    }
    if arg["task"]:
        policy["task"] = arg["task"]
    policy_node = Node(
        package="apprentice",
        executable="policy_node",
        name="policy_node",
        output="screen",
        parameters=[policy_config, policy],
    )
    with open(config) as f:
        camera_defaults = (yaml.safe_load(f) or {}).get("camera", {}).get("ros__parameters", {})
    cameras = []
    for entry in filter(None, (e.strip() for e in arg["cameras"].split(","))):
        name, _, source = entry.partition(":")
        cameras.append(
            Node(
                package="apprentice",
                executable="camera_node",
                name=f"camera_{name}",
                output="screen",
                parameters=[{**camera_defaults, "name": name, "source": source or "synthetic"}],
            )
        )
    return [GroupAction([PushRosNamespace(arg["namespace"]), driver, *cameras, policy_node, *viewer(arg)])]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=nodes)]
    )
