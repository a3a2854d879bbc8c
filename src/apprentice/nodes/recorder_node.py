"""Recorder node (and `apprentice record`): contract topics -> one MCAP bag per episode -> dataset.

Subscribes to the contract's topics (serialized: messages are written as received, never deserialized),
drives `apprentice.bag.recording.Recorder`, and offers `recorder/start_episode`, `recorder/stop_episode`,
`recorder/rerecord_episode`, `recorder/discard_episode` and the latched `recorder/status`.
In a terminal: → save episode / end reset, ← re-record, Esc stop; a progress line on stderr.

    apprentice record --contract config/contracts/sim_reach.yaml --dataset.root data/reach \
        --dataset.num_episodes 10 --dataset.episode_time_s 20 --dataset.reset_time_s 5
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from apprentice.bag.errors import BagError
from apprentice.bag.keys import KeyListener, progress_line
from apprentice.bag.recording import DONE, ERROR, RESETTING, WARMUP, RecordConfig, Recorder
from apprentice.contract import IMAGE_TYPES, ContractError, load_contract
from apprentice.dataset import DatasetError
from apprentice.msg import EpisodeStatus
from apprentice.nodes.runtime import request_shutdown, run_node
from apprentice.srv import StartEpisode

RESET_TIMEOUT_S = 10.0


def message_class(msg_type: str) -> Any:
    """'sensor_msgs/msg/Image' -> the generated Python class."""
    pkg, kind, name = msg_type.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        defaults = RecordConfig(root=Path("."))
        self.declare_parameter("contract", "")
        self.declare_parameter("root", "")
        self.declare_parameter("bags_dir", "")
        self.declare_parameter("num_episodes", 0)
        self.declare_parameter("episode_time_s", defaults.episode_time_s)
        self.declare_parameter("reset_time_s", defaults.reset_time_s)
        self.declare_parameter("warmup_time_s", defaults.warmup_time_s)
        self.declare_parameter("task", "")
        self.declare_parameter("autostart", False)
        self.declare_parameter("resume", False)
        self.declare_parameter("vcodec", defaults.vcodec)
        self.declare_parameter("compression", defaults.compression)
        self.declare_parameter("extra_topics", [], ParameterDescriptor(type=ParameterType.PARAMETER_STRING_ARRAY))
        self.declare_parameter("keyboard", True)
        self.declare_parameter("exit_when_done", False)
        self.declare_parameter("reset_service", "")
        p = {
            n: self.get_parameter(n).value
            for n in (
                "contract",
                "root",
                "bags_dir",
                "num_episodes",
                "episode_time_s",
                "reset_time_s",
                "warmup_time_s",
                "task",
                "autostart",
                "resume",
                "vcodec",
                "compression",
                "extra_topics",
                "keyboard",
                "exit_when_done",
                "reset_service",
            )
        }
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
            del self.waiting[topic]
        missing = [t for t in self.waiting if t in self.contract.topics]
        if missing and not self._warned_waiting:
            self.get_logger().info(f"waiting for publishers on {missing} before the first episode")
            self._warned_waiting = True

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


def _cli_overrides(argv: Sequence[str]) -> tuple[list[Parameter], list[str]]:
    """`apprentice record` flags (lerobot-record names) -> node parameters; other args go to rclpy."""
    parser = argparse.ArgumentParser(prog="apprentice record", description=__doc__.split("\n")[0])
    parser.add_argument("--contract", required=True, help="contract YAML (config/contracts/*.yaml)")
    parser.add_argument("--dataset.root", dest="root", required=True, help="dataset directory")
    parser.add_argument(
        "--dataset.num_episodes",
        dest="num_episodes",
        type=int,
        default=0,
        help="episodes to record (0 = until Esc)",
    )
    parser.add_argument("--dataset.episode_time_s", dest="episode_time_s", type=float, default=60.0)
    parser.add_argument("--dataset.reset_time_s", dest="reset_time_s", type=float, default=60.0)
    parser.add_argument("--dataset.single_task", dest="task", default="", help="task (default: the contract's)")
    parser.add_argument("--dataset.vcodec", dest="vcodec", default="libsvtav1", choices=["libsvtav1", "h264"])
    parser.add_argument("--warmup_time_s", type=float, default=0.0)
    parser.add_argument("--bags_dir", default="", help="where episode bags go (default: <root>_bags)")
    parser.add_argument("--topics", nargs="*", default=[], help="extra topics to record into the bags")
    parser.add_argument("--reset_service", default="", help="std_srvs/Trigger to call when a reset begins")
    parser.add_argument("--compression", default="none", choices=["none", "zstd", "lz4"], help="MCAP chunks")
    parser.add_argument("--resume", action="store_true", help="add episodes to an existing dataset")
    parser.add_argument(
        "--services_only",
        action="store_true",
        help="do not run timed episodes; wait for recorder/* service calls",
    )
    args, rest = parser.parse_known_args(argv)
    values: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in ("topics", "services_only")}
    values.update(autostart=not args.services_only, exit_when_done=not args.services_only)
    params = [Parameter(k, value=v) for k, v in values.items()]
    if args.topics:
        params.append(Parameter("extra_topics", Parameter.Type.STRING_ARRAY, list(args.topics)))
    return params, rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if "--ros-args" in args and not any(a.startswith("--contract") for a in args):
            return run_node(RecorderNode, args)  # `ros2 run` / launch: everything comes as parameters
        params, rest = _cli_overrides(args)
        return run_node(lambda: RecorderNode(parameter_overrides=params), rest)
    except (BagError, ContractError, DatasetError, ValueError) as exc:
        print(f"apprentice record: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
