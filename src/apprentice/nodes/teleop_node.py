"""Teleop node: reads a leader arm and commands the follower at `fps`.

Publishes the leader's joints on `leader/joint_states` (sensor_msgs/JointState, radians, stamped at read
time: the recorder's `action` source) and the same targets on `<controller>/commands`
(std_msgs/Float64MultiArray) for the follower's driver node. `leader_port:=virtual` with
`leader_virtual_motion:=sine` gives a leader that sways on its own (no hardware).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from apprentice.motors import BusError
from apprentice.nodes.driver_node import declare_arm_parameters, diagnostic_status, open_arm
from apprentice.nodes.runtime import run_node
from apprentice.robots.teleop import LeaderArmSource, TeleopSource

SOURCES = ("leader_arm",)  # keyboard / gamepad sources plug in here (same TeleopSource interface)


class TeleopNode(Node):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("teleop", **kwargs)
        declare_arm_parameters(self, "leader_", "so101_leader")
        self.declare_parameter("source", "leader_arm")
        self.declare_parameter("fps", 60.0)
        self.declare_parameter("controller", "forward_position_controller")
        self.declare_parameter("torque_off_on_error", True)
        self.declare_parameter("num_retry", 3)
        source = self.get_parameter("source").value
        if source not in SOURCES:
            raise BusError(f"teleop: source must be one of {SOURCES}, got '{source}'")
        arm, self.virtual = open_arm(self, "leader_")
        try:
            arm.connect()
        except BusError:
            self._stop_virtual()
            raise
        self.arm = arm
        self.source: TeleopSource = LeaderArmSource(arm)
        self.error = ""
        self._reads = 0
        self._rate_t0 = time.monotonic()
        controller = self.get_parameter("controller").value
        self.leader_pub = self.create_publisher(JointState, "leader/joint_states", 10)
        self.command_pub = self.create_publisher(Float64MultiArray, f"{controller}/commands", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_timer(1.0 / float(self.get_parameter("fps").value), self._tick)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())

    def _tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        try:
            targets = self.source.read()
        except BusError as exc:  # the follower keeps holding its last command; diagnostics say why
            if str(exc) != self.error:
                self.get_logger().error(str(exc))
            self.error = str(exc)
            return
        self.error = ""
        self._reads += 1
        state = JointState(name=self.source.joint_names, position=targets.tolist())
        state.header.stamp = stamp
        self.leader_pub.publish(state)
        self.command_pub.publish(Float64MultiArray(data=targets.tolist()))

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        rate = self._reads / max(1e-9, now - self._rate_t0)
        self._reads, self._rate_t0 = 0, now
        level = DiagnosticStatus.ERROR if self.error else DiagnosticStatus.OK
        status = diagnostic_status(self, self.arm, level, self.error or f"teleoperating at {rate:.0f} Hz", rate)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def close(self) -> None:
        try:
            self.source.close()
        except BusError as exc:
            self.get_logger().error(f"on shutdown: {exc}")
        finally:
            self._stop_virtual()

    def _stop_virtual(self) -> None:
        if self.virtual is not None:
            self.virtual.stop()
            self.virtual = None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run_node(TeleopNode, argv)
    except BusError as exc:
        print(f"teleop: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
