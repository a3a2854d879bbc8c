"""Teleop node: reads a teleop source (a leader arm, a keyboard, a gamepad, a phone) and commands the follower.

Publishes the targets on `leader/joint_states` (sensor_msgs/JointState, radians, stamped at read time:
the recorder's `action` source) and on `<controller>/commands` (std_msgs/Float64MultiArray) for the
follower's driver node. `source:=leader_arm` (default) reads a leader arm (`leader_port:=virtual` with
`leader_virtual_motion:=sine` sways on its own); the device sources (keyboard, keyboard_evdev,
gamepad_evdev, joy, phone) drive the follower (`robot_type`) through a device map
(config/teleop/*.yaml), follow its `joint_states`, publish `teleop/intervention` (std_msgs/Bool) and
call the recorder's episode services. A held device (dead-man released, lost, silent) publishes no
command: the driver holds its last goal.
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
from apprentice.nodes.driver_node import declare_arm_parameters, diagnostic_status, open_arm, publish
from apprentice.nodes.runtime import run_node
from apprentice.nodes.teleop_devices import DeviceLink
from apprentice.robots import RobotError
from apprentice.robots.teleop import LeaderArmSource, TeleopSource
from apprentice.teleop import DEVICE_SOURCES, TeleopError

SOURCES = ("leader_arm", *DEVICE_SOURCES)  # device sources: nodes/teleop_devices.py


class TeleopNode(Node):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("teleop", **kwargs)
        declare_arm_parameters(self, "leader_", "so101_leader")
        self.declare_parameter("source", "leader_arm")
        self.declare_parameter("fps", 60.0)
        self.declare_parameter("controller", "forward_position_controller")
        self.declare_parameter("torque_off_on_error", True)
        self.declare_parameter("num_retry", 3)
        # Device sources (ignored by leader_arm):
        self.declare_parameter("robot_type", "so101_follower")  # the follower the device drives
        self.declare_parameter("device_config", "")  # device map: a name in config/teleop/ or a path
        self.declare_parameter("device", "")  # keyboard: a tty path; *_evdev: /dev/input/eventN
        self.declare_parameter("joy_topic", "joy")
        self.declare_parameter("phone_host", "127.0.0.1")
        self.declare_parameter("phone_port", 8766)
        self.declare_parameter("phone_certfile", "")
        self.declare_parameter("phone_keyfile", "")
        self.declare_parameter("max_relative_target", 0.1)  # rad per command from the measured joints
        self.declare_parameter("recorder", "recorder")  # the recorder node whose episode services to call
        source = self.get_parameter("source").value
        if source not in SOURCES:
            raise BusError(f"teleop: parameter source must be one of {SOURCES}, got '{source}'")
        self.arm, self.virtual, self.devices = None, None, None
        if source == "leader_arm":
            arm, self.virtual = open_arm(self, "leader_")
            try:
                arm.connect()
            except BusError:
                self._stop_virtual()
                raise
            self.arm = arm
            self.source: TeleopSource = LeaderArmSource(arm)
        else:
            self.devices = DeviceLink(self, source)
            self.source = self.devices.source
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
        except (BusError, TeleopError) as exc:  # the follower keeps holding its last command; diagnostics say why
            if str(exc) != self.error:
                self.get_logger().error(str(exc))
            self.error = str(exc)
            return
        if self.devices is not None:
            self.devices.after_read()
        self.error = ""
        if targets is None:  # hold: no device, dead-man released or silent device
            return
        self._reads += 1
        state = JointState(name=self.source.joint_names, position=targets.tolist())
        state.header.stamp = stamp
        publish(self, self.leader_pub, state)
        publish(self, self.command_pub, Float64MultiArray(data=targets.tolist()))

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        rate = self._reads / max(1e-9, now - self._rate_t0)
        self._reads, self._rate_t0 = 0, now
        if self.arm is not None:
            level = DiagnosticStatus.ERROR if self.error else DiagnosticStatus.OK
            status = diagnostic_status(self, self.arm, level, self.error or f"teleoperating at {rate:.0f} Hz", rate)
        else:
            status = self.devices.diagnostics(rate, self.error)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        publish(self, self.diag_pub, array)

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
    except (BusError, RobotError, TeleopError) as exc:
        print(f"teleop: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
