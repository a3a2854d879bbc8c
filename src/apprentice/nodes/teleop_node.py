"""Teleop node: reads a teleop source (a leader arm, a keyboard, a gamepad, a phone) and commands the follower.

Device sources (keyboard, keyboard_evdev, gamepad_evdev, joy, phone; nodes/teleop_devices.py) drive the
follower (`robot_type`) through a device map (config/teleop/*.yaml), follow its `joint_states`, publish
`teleop/intervention` (std_msgs/Bool) and call the recorder's episode services; a held device (dead-man
released, lost, silent) publishes no command and the driver holds its last goal.
Publishes the leader's joints on `leader/joint_states` (sensor_msgs/JointState, radians, stamped at read
time: the recorder's `action` source) and the same targets on `<controller>/commands`
(std_msgs/Float64MultiArray) for the follower's driver node — unless `forward_commands:=false`: then a
policy node with human takeover is the arm's one commander and relays the leader itself. `leader_port:=virtual` with
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
from apprentice.nodes.driver_node import arm_parameters, diagnostic_status, open_arm
from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import run_node
from apprentice.nodes.teleop_devices import DeviceLink
from apprentice.robots.teleop import LeaderArmSource, TeleopSource
from apprentice.teleop import DEVICE_SOURCES, TeleopError

SOURCES = ("leader_arm", *DEVICE_SOURCES)  # device sources: nodes/teleop_devices.py

PARAMETERS = (
    *arm_parameters("leader_", "so101_leader"),
    Param("source", "leader_arm", f"teleop source: {' | '.join(SOURCES)}"),
    Param("fps", 60.0, "leader read and follower command rate"),
    Param("controller", "forward_position_controller", "command the follower on <controller>/commands"),
    Param("torque_off_on_error", True, "release the leader's torque when its bus fails"),
    Param("num_retry", 3, "retries of a failed bus transaction"),
    Param("forward_commands", True, "command the follower; false: only publish leader/joint_states (the policy "
          "node drives, e.g. during DAgger takeover)"),
    # Device sources (ignored by leader_arm):
    Param("robot_type", "so101_follower", "the follower a device source drives"),
    Param("device_config", "", "device map: a name in config/teleop/ (keyboard_joints, gamepad, ...) or a YAML path"),
    Param("device", "", "keyboard: a terminal path (default stdin); *_evdev: /dev/input/eventN (default: find one)"),
    Param("joy_topic", "joy", "sensor_msgs/Joy topic for source:=joy"),
    Param("phone_host", "127.0.0.1", "phone page address; 0.0.0.0 to serve the LAN"),
    Param("phone_port", 8766, "phone page port (8765 is the live viewer's)"),
    Param("phone_certfile", "", "HTTPS certificate for the phone page (phones need HTTPS for motion sensors)"),
    Param("phone_keyfile", "", "HTTPS private key for the phone page"),
    Param("max_relative_target", 0.1, "device sources: rad per command from the follower's measured joints"),
    Param("recorder", "recorder", "device episode buttons call <recorder>/start_episode, stop_episode, ..."),
)


class TeleopNode(Node):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("teleop", **kwargs)
        declare_parameters(self, PARAMETERS)
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
        # No publisher at all when not forwarding: the policy node counts publishers on the command topic.
        forward = bool(self.get_parameter("forward_commands").value)
        self.command_pub = self.create_publisher(Float64MultiArray, f"{controller}/commands", 10) if forward else None
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
        self.leader_pub.publish(state)
        if self.command_pub is not None:
            self.command_pub.publish(Float64MultiArray(data=targets.tolist()))

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
        return run_node(TeleopNode, argv, usage=node_help("teleop_node", __doc__, PARAMETERS))
    except (BusError, TeleopError) as exc:  # RobotError is a BusError
        print(f"teleop: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
