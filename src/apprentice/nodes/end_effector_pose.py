"""The driver's end-effector pose output: FK of the measured joints as tf (/tf) and geometry_msgs/PoseStamped.

tf2_msgs has no PyPI wheel; this checkout builds it from its one-line definition (interfaces/tf2_msgs),
an apt-installed ROS 2 brings the real one. Without either, only the PoseStamped topic is published.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.node import Node

from apprentice.robots import RobotDefinition
from apprentice.teleop import load_kinematics

try:
    from tf2_msgs.msg import TFMessage
except ImportError:
    TFMessage = None


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method: stable for every rotation)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    return float(x), float(y), float(z), float(w)


class EndEffectorPosePublisher:
    """Publishes the end-effector pose for each joint reading (the driver calls `publish` per tick)."""

    def __init__(self, node: Node, definition: RobotDefinition, kinematics: str, topic: str, tf_prefix: str) -> None:
        self.kinematics = load_kinematics(kinematics or definition)
        config = self.kinematics.config
        self.base_frame = tf_prefix + (config.base_frame if config else "base_link")
        self.frame = tf_prefix + self.kinematics.frame
        self.index = [definition.joint_names.index(n) for n in self.kinematics.joint_names]
        self.pose_pub = node.create_publisher(PoseStamped, topic, 10)
        self.tf_pub = node.create_publisher(TFMessage, "/tf", 100) if TFMessage is not None else None
        if self.tf_pub is None:
            node.get_logger().warning("tf2_msgs is not importable: end-effector pose goes to PoseStamped only")

    def messages(self, positions: np.ndarray, stamp: Time) -> tuple[PoseStamped, object | None]:
        pose = self.kinematics.fk(np.asarray(positions)[self.index])
        x, y, z = (float(v) for v in pose[:3, 3])
        qx, qy, qz, qw = _quaternion(pose[:3, :3])
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = stamp, self.base_frame
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = qx, qy, qz, qw
        if TFMessage is None:
            return msg, None
        transform = TransformStamped()
        transform.header = msg.header
        transform.child_frame_id = self.frame
        t, r = transform.transform.translation, transform.transform.rotation
        t.x, t.y, t.z = x, y, z
        r.x, r.y, r.z, r.w = qx, qy, qz, qw
        return msg, TFMessage(transforms=[transform])
