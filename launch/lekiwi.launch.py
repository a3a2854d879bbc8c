"""LeKiwi, split over the network the ROS way: one launch per computer, one DDS domain for both.

    # on the robot (Raspberry Pi): the servo bus (arm + wheels) and the two cameras
    ros2 launch apprentice lekiwi.launch.py host:=robot port:=/dev/ttyACM0
    # on the laptop: the SO-101 leader arm; drive the base from a terminal with
    ros2 launch apprentice lekiwi.launch.py host:=laptop leader_port:=/dev/ttyACM0
    ros2 run apprentice base_teleop_node

Both computers export the same ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET (or
ROS_STATIC_PEERS=<the other's address> where multicast is blocked); see the README's LeKiwi section.
The topics between them are joint_states, odom, cameras/*, forward_position_controller/commands, cmd_vel.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from launch import LaunchDescription

ARGUMENTS = {
    "host": ("robot", "which side this computer is: robot (driver + cameras) | laptop (leader arm)"),
    "port": ("/dev/ttyACM0", "robot: the LeKiwi servo bus (arm ids 1..6, wheels 7..9), or `virtual`"),
    "robot_id": ("default", "robot: calibration id (lerobot's robots/lekiwi/<id>.json)"),
    "front_camera": ("/dev/video0", "robot: front camera source (lerobot's LeKiwi: /dev/video0)"),
    "wrist_camera": ("/dev/video2", "robot: wrist camera source (lerobot's LeKiwi: /dev/video2)"),
    "leader_port": ("/dev/ttyACM0", "laptop: the SO-101 leader arm's serial port, or `virtual`"),
    "leader_id": ("default", "laptop: the leader's calibration id"),
    "namespace": ("", "ROS namespace for every node (one robot per namespace)"),
}


def nodes(context) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    host = arg("host")
    if host == "robot":
        started = [
            Node(
                package="apprentice",
                executable="driver_node",
                name="driver",
                output="screen",
                parameters=[{"robot_type": "lekiwi", "port": arg("port"), "robot_id": arg("robot_id")}],
            )
        ]
        for name in ("front", "wrist"):
            started.append(
                Node(
                    package="apprentice",
                    executable="camera_node",
                    name=f"camera_{name}",
                    output="screen",
                    parameters=[{"name": name, "source": arg(f"{name}_camera")}],
                )
            )
    elif host == "laptop":
        started = [
            Node(
                package="apprentice",
                executable="teleop_node",
                name="teleop",
                output="screen",
                parameters=[
                    {
                        "leader_robot_type": "so101_leader",
                        "leader_port": arg("leader_port"),
                        "leader_robot_id": arg("leader_id"),
                    }
                ],
            )
        ]
    else:
        raise ValueError(f"lekiwi.launch.py: host must be robot or laptop, got '{host}'")
    return [GroupAction([PushRosNamespace(arg("namespace")), *started])]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=nodes)]
    )
