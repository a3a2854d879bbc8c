"""The driver's mobile-base part (LeKiwi): `cmd_vel` (geometry_msgs/Twist) in, `odom` (nav_msgs/Odometry) out.

Created by the driver node when the robot definition has wheels, and run from the driver's bus loop, so
wheel commands and reads share the arm's bus and thread. A `cmd_vel` older than `cmd_vel_timeout_s`
(0.5 s, lerobot's LeKiwi host watchdog) stops the wheels: a lost laptop or network stops the base.
Odometry is the wheels' measured speeds through the omniwheel kinematics, integrated in the odom frame
(`odom_frame` -> `base_frame`, REP 105). tf2_msgs has no PyPI wheel, so the odom -> base_link transform is
not broadcast here; with a ROS install, any odometry-to-tf relay fills it from `odom`.
"""

from __future__ import annotations

import math
import time

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry as OdometryMsg
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node

from apprentice.nodes.params import Param, declare_parameters
from apprentice.robots import Arm
from apprentice.robots.omniwheel import Odometry, OmniwheelKinematics

# Declared by the driver node when its robot has wheels; listed in the driver's --help.
BASE_PARAMETERS = (
    Param("cmd_vel_timeout_s", 0.5, "mobile base: a cmd_vel older than this stops the wheels"),
    Param("odom_frame", "odom", "mobile base: frame_id of the odometry"),
    Param("base_frame", "base_link", "mobile base: child_frame_id of the odometry"),
)


class MobileBase:
    def __init__(self, node: Node, arm: Arm, callback_group: CallbackGroup) -> None:
        p = declare_parameters(node, BASE_PARAMETERS)
        self.node = node
        self.arm = arm
        self.timeout_s = float(p["cmd_vel_timeout_s"])
        self.odom_frame = str(p["odom_frame"])
        self.base_frame = str(p["base_frame"])
        assert arm.definition.base is not None  # the definition checks wheels come with a base
        self.kinematics = OmniwheelKinematics(arm.definition.base)
        self.odometry = Odometry()
        self.command = np.zeros(3)
        self._received_at = -math.inf
        self._measured = np.zeros(3)
        self._read_at: float | None = None
        node.create_subscription(Twist, "cmd_vel", self._on_cmd_vel, 10, callback_group=callback_group)
        self.odom_pub = node.create_publisher(OdometryMsg, "odom", 10)

    def _on_cmd_vel(self, msg: Twist) -> None:
        command = np.array([msg.linear.x, msg.linear.y, msg.angular.z])
        if not np.all(np.isfinite(command)):
            self.node.get_logger().error(
                f"cmd_vel: linear.x/linear.y/angular.z must be finite, got {command.tolist()}; base stopped",
                throttle_duration_sec=2.0,
            )
            command = np.zeros(3)
        self.command = command
        self._received_at = time.monotonic()

    def stop(self) -> None:
        self.command = np.zeros(3)

    def tick(self) -> OdometryMsg:
        """Command the wheels, read their speeds, advance the odometry; return the Odometry to publish."""
        now = time.monotonic()
        fresh = now - self._received_at <= self.timeout_s and self.arm.torque_enabled
        command = self.command if fresh else np.zeros(3)
        self.arm.send_wheel_velocities(self.kinematics.wheel_speeds(*command))
        stamp = self.node.get_clock().now().to_msg()
        measured = np.array(self.kinematics.body_twist(self.arm.read_wheel_velocities()))
        if self._read_at is not None:
            # Trapezoid over the interval between two reads: the speeds change smoothly in between.
            self.odometry.update(*(0.5 * (measured + self._measured)), now - self._read_at)
        self._measured, self._read_at = measured, now
        return self._message(stamp, measured)

    def _message(self, stamp: object, measured: np.ndarray) -> OdometryMsg:
        msg = OdometryMsg()
        msg.header.stamp = stamp
        msg.header.frame_id = self.odom_frame
        msg.child_frame_id = self.base_frame
        msg.pose.pose.position.x, msg.pose.pose.position.y = self.odometry.x, self.odometry.y
        q = msg.pose.pose.orientation
        q.x, q.y, q.z, q.w = self.odometry.quaternion()
        # The twist is in the child (base) frame, as nav_msgs/Odometry defines it.
        msg.twist.twist.linear.x, msg.twist.twist.linear.y = float(measured[0]), float(measured[1])
        msg.twist.twist.angular.z = float(measured[2])
        return msg
