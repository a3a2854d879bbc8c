"""The teleop node's device side: a DeviceSource opened from the node's parameters and wired to ROS.

Subscribes the follower's `joint_states` (what the source clamps to and starts from) and, for
`source:=joy`, the Joy topic; publishes `teleop/intervention` (std_msgs/Bool, transient-local, on change
and at 1 Hz) and calls the recorder's episode services when the device's episode buttons are pressed.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from apprentice.robots import load_robot
from apprentice.srv import StartEpisode
from apprentice.teleop import DeviceOptions, DeviceSource, make_device_source

EPISODE_SERVICES = {"start": "start_episode", "stop": "stop_episode", "rerecord": "rerecord_episode",
                    "discard": "discard_episode"}  # fmt: skip


class DeviceLink:
    """Owns the device source of a teleop node and its topics/services (the node keeps the tick)."""

    def __init__(self, node: Node, source: str) -> None:
        self.node = node
        p = {name: node.get_parameter(name).value for name in (
            "robot_type", "device_config", "device", "joy_topic", "phone_host", "phone_port",
            "phone_certfile", "phone_keyfile", "max_relative_target", "recorder")}  # fmt: skip
        options = DeviceOptions(
            device=p["device"], joy_topic=p["joy_topic"], phone_host=p["phone_host"],
            phone_port=int(p["phone_port"]), phone_certfile=p["phone_certfile"], phone_keyfile=p["phone_keyfile"],
        )  # fmt: skip
        self.source: DeviceSource = make_device_source(
            source, load_robot(p["robot_type"]), p["device_config"], options, float(p["max_relative_target"])
        )
        log = node.get_logger()
        log.info(f"teleop from {self.source.device.name} ({self.source.map.mode} mode)")
        log.info(f"inputs: {self.source.map.describe()}")
        node.create_subscription(JointState, "joint_states", self._on_joint_states, 10)
        if source == "joy":
            joy = self.source.device
            node.create_subscription(Joy, p["joy_topic"], lambda m: joy.on_joy(m.axes, m.buttons), 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.intervention_pub = node.create_publisher(Bool, "teleop/intervention", latched)
        self._intervention: bool | None = None
        recorder = p["recorder"].rstrip("/")
        self.episode_clients = {
            action: node.create_client(StartEpisode if action == "start" else Trigger, f"{recorder}/{name}")
            for action, name in EPISODE_SERVICES.items()
        }

    def _on_joint_states(self, msg: JointState) -> None:
        by_name = dict(zip(msg.name, msg.position))
        if all(n in by_name for n in self.source.joint_names):
            self.source.observe([by_name[n] for n in self.source.joint_names])

    def after_read(self) -> None:
        """After each read: intervention changes go out at once; episode buttons call the recorder."""
        if self.source.intervention != self._intervention:
            self._intervention = self.source.intervention
            self.intervention_pub.publish(Bool(data=self.source.intervention))
        for action in self.source.pop_episode_requests():
            client = self.episode_clients[action]
            if not client.service_is_ready():
                self.node.get_logger().warning(
                    f"episode {action}: {client.srv_name} is not available (is the recorder running?)"
                )
                continue
            request = StartEpisode.Request() if action == "start" else Trigger.Request()
            future = client.call_async(request)
            future.add_done_callback(lambda f, a=action: self._episode_done(a, f))

    def _episode_done(self, action: str, future: object) -> None:
        response = future.result()
        log = self.node.get_logger().info if response.success else self.node.get_logger().warning
        log(f"episode {action}: {response.message}")

    def diagnostics(self, rate: float, error: str) -> DiagnosticStatus:
        """OK while moving, WARN with the reason while holding, ERROR on a device error; re-sends intervention."""
        source = self.source
        self.intervention_pub.publish(Bool(data=source.intervention))
        if error:
            level, message = DiagnosticStatus.ERROR, error
        elif source.engaged:
            level, message = DiagnosticStatus.OK, f"teleoperating at {rate:.0f} Hz"
        else:
            level, message = DiagnosticStatus.WARN, f"holding: {source.hold_reason}"
        values = {"device": source.device.name, "mode": source.map.mode, "rate_hz": f"{rate:.1f}",
                  "intervention": str(source.intervention)}  # fmt: skip
        return DiagnosticStatus(
            level=level,
            name=f"{self.node.get_name()}: {source.device.name}",
            message=message,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
