"""A talker/listener pair run as separate processes by test_ros_graph.py (not collected by pytest).

talker:   publishes JointState on `joint_states` and EpisodeStatus on `recorder/status`, value i at tick i.
listener: prints one JSON line per received message and exits 0 after N of each (or 1 on timeout).
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from apprentice.msg import EpisodeStatus
from rclpy.node import Node
from sensor_msgs.msg import JointState

from apprentice.nodes.runtime import run_node

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


class Talker(Node):
    def __init__(self) -> None:
        super().__init__("foundation_talker")
        self.joints = self.create_publisher(JointState, "joint_states", 10)
        self.status = self.create_publisher(EpisodeStatus, "recorder/status", 10)
        self.tick = 0
        self.create_timer(0.02, self.publish)
        print("talker ready", flush=True)

    def publish(self) -> None:
        i = self.tick
        stamp = self.get_clock().now().to_msg()
        js = JointState(name=JOINTS, position=[i + 0.1 * k for k in range(6)])
        js.header.stamp = stamp
        self.joints.publish(js)
        status = EpisodeStatus(state=EpisodeStatus.RECORDING, episode_index=i, task=f"task {i}")
        status.header.stamp = stamp
        self.status.publish(status)
        self.tick += 1


def listen(count: int, timeout_s: float) -> int:
    rclpy.init()
    node = rclpy.create_node("foundation_listener")
    got = {"joint_states": 0, "status": 0}

    def on_joints(msg: JointState) -> None:
        got["joint_states"] += 1
        print(json.dumps({"topic": "joint_states", "name": list(msg.name), "position": list(msg.position)}), flush=True)

    def on_status(msg: EpisodeStatus) -> None:
        got["status"] += 1
        print(json.dumps({"topic": "status", "episode_index": msg.episode_index, "task": msg.task,
                          "state": msg.state}), flush=True)

    node.create_subscription(JointState, "joint_states", on_joints, 10)
    node.create_subscription(EpisodeStatus, "recorder/status", on_status, 10)
    print("listener ready", flush=True)
    deadline = time.monotonic() + timeout_s
    while min(got.values()) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if min(got.values()) >= count else 1


if __name__ == "__main__":
    if sys.argv[1] == "talker":
        sys.exit(run_node(Talker))
    sys.exit(listen(int(sys.argv[2]), float(sys.argv[3])))
