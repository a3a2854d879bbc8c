"""Recorder node (and `apprentice record`): contract topics -> one MCAP bag per episode -> dataset.

Subscribes to the contract's topics (serialized: messages are written as received, never deserialized),
drives `apprentice.bag.recording.Recorder`, and offers `recorder/start_episode`, `recorder/stop_episode`,
`recorder/rerecord_episode`, `recorder/discard_episode` and the latched `recorder/status`.
In a terminal: → save episode / end reset, ← re-record, Esc stop; a progress line on stderr.

    apprentice record --contract config/contracts/sim_reach.yaml --dataset.root data/reach \
        --dataset.num_episodes 10 --dataset.episode_time_s 20 --dataset.reset_time_s 5
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from apprentice.bag.errors import BagError
from apprentice.bag.keys import KeyListener, progress_line
from apprentice.bag.recording import DONE, ERROR, RESETTING, WARMUP, RecordConfig, Recorder
from apprentice.contract import IMAGE_TYPES, ContractError, load_contract
from apprentice.dataset import DatasetError
from apprentice.msg import EpisodeStatus
from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import message_class, request_shutdown, run_node
from apprentice.srv import StartEpisode

RESET_TIMEOUT_S = 10.0
_DEFAULTS = RecordConfig(root=Path("."))
PARAMETERS = (
    Param("contract", "", "contract YAML path or a name in config/contracts/ (required)"),
    Param("root", "", "dataset directory (required)"),
    Param("bags_dir", "", "where episode bags go; '' = <root>_bags"),
    Param("num_episodes", 0, "episodes to record; 0 = until stopped"),
    Param("episode_time_s", _DEFAULTS.episode_time_s, "length of each episode; 0 = until stop_episode"),
    Param("reset_time_s", _DEFAULTS.reset_time_s, "reset period between episodes"),
    Param("warmup_time_s", _DEFAULTS.warmup_time_s, "warm-up before the first episode"),
    Param("task", "", "task of the episodes; '' = the contract's"),
    Param("autostart", False, "run warm-up/record/reset cycles by itself (else only the recorder/* services)"),
    Param("resume", False, "add episodes to an existing dataset"),
    Param("vcodec", _DEFAULTS.vcodec, "video codec: libsvtav1 | h264"),
    Param("compression", _DEFAULTS.compression, "MCAP chunk compression: none | zstd | lz4"),
    Param("extra_topics", [], "more topics to record into the bags (not the dataset)", array_of=str),
    Param("keyboard", True, "arrow keys / Esc control episodes when run in a terminal"),
    Param("exit_when_done", False, "exit once num_episodes are saved and converted"),
    Param("reset_service", "", "std_srvs/Trigger called as each warm-up/reset begins (e.g. sim/reset)"),
    Param("wait_for_action", True, "start only once the action topic delivers; false: once it has a publisher"),
    Param("sentry_window_s", _DEFAULTS.sentry_window_s,
          "> 0: sentry mode: keep the last N s, save them as an episode only when triggered"),
    Param("sentry_trigger_topic", "", "sentry: std_msgs/Bool whose rising edge saves the window"),
    Param("fault_topic", "policy_node/fault", "the policy node's latched fault (std_msgs/String), shown in the status"),
)


class RecorderNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        p = declare_parameters(self, PARAMETERS)
        if not p["contract"] or not p["root"]:
            raise ValueError("recorder: parameters 'contract' (YAML path) and 'root' (dataset dir) are required")
        self.contract = load_contract(p["contract"])
        self.exit_when_done = bool(p["exit_when_done"])
        config = RecordConfig(
            root=Path(p["root"]),
            bags_dir=Path(p["bags_dir"]) if p["bags_dir"] else None,
            num_episodes=int(p["num_episodes"]),
            episode_time_s=float(p["episode_time_s"]),
            reset_time_s=float(p["reset_time_s"]),
            warmup_time_s=float(p["warmup_time_s"]),
            task=p["task"] or None,
            autostart=bool(p["autostart"]),
            resume=bool(p["resume"]),
            vcodec=str(p["vcodec"]),
            compression=str(p["compression"]),
            wait_for_action=bool(p["wait_for_action"]),
            sentry_window_s=float(p["sentry_window_s"]),
        )
        self.recorder = Recorder(config, self.contract)
        self.extra = [
            t for t in (p["extra_topics"] or []) + self.contract.extra_topics if t not in self.recorder.topic_types
        ]
        self.status_pub = self.create_publisher(
            EpisodeStatus, "recorder/status", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        )
        self.recorder.listeners.append(self._publish_status)
        # Optional std_srvs/Trigger called as each reset phase begins (e.g. `sim/reset`: a new target).
        self.reset_client = self.create_client(Trigger, p["reset_service"]) if p["reset_service"] else None
        self._previous_state = self.recorder.state
        self._reset_deadline = 0.0
        self.recorder.listeners.append(self._on_state_change)
        self._warned_waiting = False
        self.waiting = dict(self.recorder.topic_types)  # subscribed once a publisher shows its QoS
        # bags keep the resolved names, so a namespaced robot's bag says /robot1/joint_states
        self.recorder.bag_names.update({t: self.resolve_topic_name(t) for t in self.recorder.topic_types})
        self.create_service(StartEpisode, "recorder/start_episode", self._on_start)
        self.create_service(Trigger, "recorder/stop_episode", partial(self._on_trigger, self.recorder.stop_episode))
        self.create_service(
            Trigger, "recorder/rerecord_episode", partial(self._on_trigger, self.recorder.rerecord_episode)
        )
        self.create_service(
            Trigger, "recorder/discard_episode", partial(self._on_trigger, self.recorder.discard_episode)
        )
        for note in self.recorder.open():
            self.get_logger().warning(note)
        self._subscribe_when_published()
        if p["sentry_trigger_topic"]:
            self.create_subscription(Bool, p["sentry_trigger_topic"], self._on_sentry_trigger, 10)
        if p["fault_topic"]:  # the policy node's latched watchdog fault, shown in the status
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(String, p["fault_topic"], self._on_fault, latched)
        self.create_timer(0.05, self._on_tick)
        self.create_timer(0.5, self._on_status_timer)
        self.tty = sys.stderr.isatty()
        self.keys = KeyListener(self._on_key)
        if p["keyboard"] and self.keys.start():
            self.get_logger().info("keys: → save episode / end reset, ← re-record, Esc stop")
        self.get_logger().info(
            f"recording {self.recorder.topic_types and list(self.recorder.topic_types)} "
            f"into {config.bags_dir} -> dataset {config.root}"
        )

    def _subscribe_when_published(self) -> None:
        """Subscribe with the publishers' reliability, as rosbag2 does: reliable when every publisher is
        reliable (a best-effort reader loses whole large images to one lost fragment), else best effort
        (a reliable reader would not match a best-effort publisher at all)."""
        for topic, msg_type in list(self.waiting.items()):
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
            qos = QoSProfile(
                depth=10 if msg_type in IMAGE_TYPES else 100,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            )
            self.recorder.topic_reliability[topic] = "reliable" if reliable else "best_effort"
            callback = partial(self._on_message, topic)
            self.create_subscription(message_class(msg_type), topic, callback, qos, raw=True)
            self.recorder.published.add(topic)
            del self.waiting[topic]
        missing = [t for t in self.waiting if t in self.contract.topics]
        if missing and not self._warned_waiting:
            self.get_logger().info(f"waiting for publishers on {missing} before the first episode")
            self._warned_waiting = True

    def _on_sentry_trigger(self, msg: Bool) -> None:
        result = self.recorder.trigger(bool(msg.data))
        if result is not None and result[0]:  # one call site per severity (rclpy)
            self.get_logger().info(f"sentry trigger: {result[1]}")
        elif result is not None:
            self.get_logger().warning(f"sentry trigger: {result[1]}")

    def _on_fault(self, msg: String) -> None:
        if msg.data != self.recorder.fault:
            self.recorder.fault = msg.data
            if msg.data:
                self.get_logger().error(f"policy fault (latched until re-armed): {msg.data}")
            else:
                self.get_logger().info("policy re-armed")
            self._publish_status()

    def _on_message(self, topic: str, data: bytes) -> None:
        self.recorder.on_message(topic, data, self.get_clock().now().nanoseconds)

    def _find_extra_topics(self) -> None:
        types = dict(self.get_topic_names_and_types())
        for topic in list(self.extra):
            full = self.resolve_topic_name(topic)
            if full in types:
                self.recorder.bag_names[topic] = full
                self.recorder.register_topic(topic, types[full][0])
                self.waiting[topic] = types[full][0]
                self.extra.remove(topic)

    def _on_tick(self) -> None:
        if "reset_service" in self.recorder.holds and time.monotonic() > self._reset_deadline:
            self.get_logger().warning(f"{self.reset_client.srv_name} did not answer in {RESET_TIMEOUT_S} s; going on")
            self.recorder.holds.discard("reset_service")
        self.recorder.tick()
        if self.exit_when_done and self.recorder.state in (DONE, ERROR) and self.recorder.wait_converted(0):
            log = self.get_logger().info if self.recorder.state == DONE else self.get_logger().error
            log(f"session ended: {self.recorder.episodes_saved} episodes saved. {self.recorder.message}")
            request_shutdown()

    def _on_status_timer(self) -> None:
        if self.extra:
            self._find_extra_topics()
        if self.waiting:
            self._subscribe_when_published()
        self._publish_status()
        if self.tty:
            sys.stderr.write("\r" + progress_line(self.recorder.status()) + "\033[K")
            sys.stderr.flush()

    def _publish_status(self) -> None:
        s = self.recorder.status()
        msg = EpisodeStatus(**{k: v for k, v in s.items()})
        msg.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)

    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response) -> StartEpisode.Response:
        response.success, response.message, response.episode_index = self.recorder.start_episode(request.task)
        return response

    def _on_trigger(self, action: Any, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = action()
        return response

    def _on_state_change(self) -> None:
        state = self.recorder.state
        if self.reset_client is not None and state in (WARMUP, RESETTING) and state != self._previous_state:
            if self.reset_client.service_is_ready():
                # The phase lasts at least until the reset is done, so no episode starts mid-reset.
                self.recorder.holds.add("reset_service")
                self._reset_deadline = time.monotonic() + RESET_TIMEOUT_S
                future = self.reset_client.call_async(Trigger.Request())
                future.add_done_callback(lambda _: self.recorder.holds.discard("reset_service"))
            else:
                self.get_logger().warning(f"reset service {self.reset_client.srv_name} is not available")
        self._previous_state = state

    def _on_key(self, key: str) -> None:
        if key == "right":
            self.recorder.stop_episode()
        elif key == "left":
            self.recorder.rerecord_episode()
        elif key == "escape":
            self.recorder.stop_session()
            self.exit_when_done = True

    def close(self) -> None:
        self.keys.stop()
        if self.tty:
            sys.stderr.write("\n")
        self.recorder.close()
        self.get_logger().info(f"closed: {self.recorder.episodes_saved} episodes saved to {self.recorder.config.root}")


def run(parameters: dict[str, Any], ros_args: Sequence[str] = ()) -> int:
    """Run the recorder with these parameter values (`apprentice record`, see nodes/record_cli.py)."""
    overrides = [
        Parameter(k, Parameter.Type.STRING_ARRAY, list(v)) if isinstance(v, list) else Parameter(k, value=v)
        for k, v in parameters.items()
    ]
    try:
        return run_node(lambda: RecorderNode(parameter_overrides=overrides), list(ros_args))
    except (BagError, ContractError, DatasetError, ValueError) as exc:
        print(f"apprentice record: error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """`ros2 run apprentice recorder_node --ros-args -p contract:=... -p root:=...` (launch files too)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in ("--ros-args", "-h", "--help"):
        from apprentice.nodes.record_cli import main as record_main  # `apprentice record` flags

        return record_main(args)
    try:
        return run_node(RecorderNode, args, usage=node_help("recorder_node", __doc__, PARAMETERS))
    except (BagError, ContractError, DatasetError, ValueError) as exc:
        print(f"recorder_node: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
