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

import argparse
import sys
import time
from collections.abc import Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from apprentice.motors import BusError
from apprentice.nodes.driver_node import declare_arm_parameters, diagnostic_status, open_arm, publish
from apprentice.nodes.runtime import run_node
from apprentice.robots import RobotError, load_robot
from apprentice.robots.teleop import LeaderArmSource, TeleopSource
from apprentice.srv import StartEpisode
from apprentice.teleop import DEVICE_SOURCES, DeviceOptions, DeviceSource, TeleopError, make_device_source

SOURCES = ("leader_arm", *DEVICE_SOURCES)
EPISODE_SERVICES = {"start": "start_episode", "stop": "stop_episode", "rerecord": "rerecord_episode",
                    "discard": "discard_episode"}  # fmt: skip


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
        self.declare_parameter("phone_port", 8765)
        self.declare_parameter("phone_certfile", "")
        self.declare_parameter("phone_keyfile", "")
        self.declare_parameter("max_relative_target", 0.1)  # rad per command from the measured joints
        self.declare_parameter("recorder", "recorder")  # the recorder node whose episode services to call
        source = self.get_parameter("source").value
        if source not in SOURCES:
            raise BusError(f"teleop: parameter source must be one of {SOURCES}, got '{source}'")
        self.arm, self.virtual = None, None
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
            self.source = self._open_device(source)
        self.error = ""
        self._reads = 0
        self._rate_t0 = time.monotonic()
        controller = self.get_parameter("controller").value
        self.leader_pub = self.create_publisher(JointState, "leader/joint_states", 10)
        self.command_pub = self.create_publisher(Float64MultiArray, f"{controller}/commands", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_timer(1.0 / float(self.get_parameter("fps").value), self._tick)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())

    def _open_device(self, source: str) -> DeviceSource:
        p = {name: self.get_parameter(name).value for name in (
            "robot_type", "device_config", "device", "joy_topic", "phone_host", "phone_port",
            "phone_certfile", "phone_keyfile", "max_relative_target", "recorder")}  # fmt: skip
        options = DeviceOptions(
            device=p["device"], joy_topic=p["joy_topic"], phone_host=p["phone_host"],
            phone_port=int(p["phone_port"]), phone_certfile=p["phone_certfile"], phone_keyfile=p["phone_keyfile"],
        )  # fmt: skip
        device_source = make_device_source(
            source, load_robot(p["robot_type"]), p["device_config"], options, float(p["max_relative_target"])
        )
        self.get_logger().info(f"teleop from {device_source.device.name} ({device_source.map.mode} mode)")
        self.get_logger().info(f"inputs: {device_source.map.describe()}")
        self.create_subscription(JointState, "joint_states", self._on_joint_states, 10)
        if source == "joy":
            joy = device_source.device
            self.create_subscription(Joy, p["joy_topic"], lambda m: joy.on_joy(m.axes, m.buttons), 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.intervention_pub = self.create_publisher(Bool, "teleop/intervention", latched)
        self._intervention: bool | None = None
        recorder = p["recorder"].rstrip("/")
        self.episode_clients = {
            action: self.create_client(StartEpisode if action == "start" else Trigger, f"{recorder}/{name}")
            for action, name in EPISODE_SERVICES.items()
        }
        return device_source

    def _on_joint_states(self, msg: JointState) -> None:
        by_name = dict(zip(msg.name, msg.position))
        if all(n in by_name for n in self.source.joint_names):
            self.source.observe([by_name[n] for n in self.source.joint_names])

    def _tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        try:
            targets = self.source.read()
        except (BusError, TeleopError) as exc:  # the follower keeps holding its last command; diagnostics say why
            if str(exc) != self.error:
                self.get_logger().error(str(exc))
            self.error = str(exc)
            return
        if isinstance(self.source, DeviceSource):
            self._device_outputs(self.source)
        self.error = ""
        if targets is None:  # hold: no device, dead-man released or silent device
            return
        self._reads += 1
        state = JointState(name=self.source.joint_names, position=targets.tolist())
        state.header.stamp = stamp
        publish(self, self.leader_pub, state)
        publish(self, self.command_pub, Float64MultiArray(data=targets.tolist()))

    def _device_outputs(self, source: DeviceSource) -> None:
        if source.intervention != self._intervention:
            self._intervention = source.intervention
            publish(self, self.intervention_pub, Bool(data=source.intervention))
        for action in source.pop_episode_requests():
            client = self.episode_clients[action]
            if not client.service_is_ready():
                self.get_logger().warning(f"episode {action}: {client.srv_name} is not available (recorder running?)")
                continue
            request = StartEpisode.Request() if action == "start" else Trigger.Request()
            future = client.call_async(request)
            future.add_done_callback(lambda f, a=action: self._episode_done(a, f))

    def _episode_done(self, action: str, future: object) -> None:
        response = future.result()
        log = self.get_logger().info if response.success else self.get_logger().warning
        log(f"episode {action}: {response.message}")

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        rate = self._reads / max(1e-9, now - self._rate_t0)
        self._reads, self._rate_t0 = 0, now
        if self.arm is not None:
            level = DiagnosticStatus.ERROR if self.error else DiagnosticStatus.OK
            status = diagnostic_status(self, self.arm, level, self.error or f"teleoperating at {rate:.0f} Hz", rate)
        else:
            source = self.source
            level = DiagnosticStatus.OK if source.engaged else DiagnosticStatus.WARN
            message = f"teleoperating at {rate:.0f} Hz" if source.engaged else f"holding: {source.hold_reason}"
            if self.error:
                level, message = DiagnosticStatus.ERROR, self.error
            values = {"device": source.device.name, "mode": source.map.mode, "rate_hz": f"{rate:.1f}",
                      "intervention": str(source.intervention)}  # fmt: skip
            status = DiagnosticStatus(level=level, name=f"{self.get_name()}: {source.device.name}", message=message,
                                      values=[KeyValue(key=k, value=v) for k, v in values.items()])  # fmt: skip
            publish(self, self.intervention_pub, Bool(data=source.intervention))
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


def _cli_overrides(argv: Sequence[str]) -> tuple[list[Parameter], list[str]]:
    """`apprentice teleop` flags (lerobot-teleoperate's names where they exist) -> node parameters."""
    parser = argparse.ArgumentParser(prog="apprentice teleop", description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="leader_arm", choices=SOURCES)
    parser.add_argument("--robot.type", dest="robot_type", default="so101_follower", help="follower a device drives")
    parser.add_argument("--teleop.type", dest="leader_robot_type", default="so101_leader", help="leader arm type")
    parser.add_argument("--teleop.port", dest="leader_port", default="", help="leader arm port, or `virtual`")
    parser.add_argument("--teleop.id", dest="leader_robot_id", default="default", help="leader calibration id")
    parser.add_argument("--device_config", default="", help="device map: name in config/teleop/ or a YAML path")
    parser.add_argument("--device", default="", help="keyboard: a terminal path; *_evdev: /dev/input/eventN")
    parser.add_argument("--joy_topic", default="joy")
    parser.add_argument("--phone_host", default="127.0.0.1", help="0.0.0.0 to serve the phone page on the LAN")
    parser.add_argument("--phone_port", type=int, default=8765)
    parser.add_argument("--phone_certfile", default="")
    parser.add_argument("--phone_keyfile", default="")
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--max_relative_target", type=float, default=0.1, help="rad per command (0 = off)")
    args, rest = parser.parse_known_args(argv)
    return [Parameter(k, value=v) for k, v in vars(args).items()], rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if "--ros-args" in args and not any(a.startswith("--source") for a in args):
            return run_node(TeleopNode, args)  # `ros2 run` / launch: everything comes as parameters
        params, rest = _cli_overrides(args)
        return run_node(lambda: TeleopNode(parameter_overrides=params), rest)
    except (BusError, RobotError, TeleopError) as exc:
        print(f"teleop: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
