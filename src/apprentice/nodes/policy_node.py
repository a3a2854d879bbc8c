"""Policy node: runs a trained checkpoint on a ROS 2 robot through the contract's topics.

    ros2 run apprentice policy_node --ros-args -p contract:=sim_reach -p enabled:=true \
        -p policy_path:=outputs/train/act/checkpoints/last/pretrained_model
    apprentice infer --policy.path=... --contract=sim_reach --enable

Observations come from the contract's topics, are sampled at the dataset fps (latest message at or
before the tick, within each feature's max_age) and fed to the policy; actions go out on the
contract's command topic (Float64MultiArray or JointTrajectory). All the logic lives in
`apprentice.deploy.PolicyRuntime`; this node only wires topics, timers and services to it.
Optional evaluation mode runs N episodes through a reset service and a success topic and writes
eval_info.json; with `follow_recorder` it drives while the recorder records (hardware evaluation).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from apprentice.contract import COMMAND_TYPES, IMAGE_TYPES, TRAJECTORY, ContractError, load_contract, normalize_type
from apprentice.deploy import DeployError, EvalBook
from apprentice.deploy.params import PolicyNodeParams
from apprentice.deploy.runtime import PolicyRuntime
from apprentice.nodes.runtime import request_shutdown, run_node
from apprentice.policies import PolicyError

try:
    from apprentice.msg import EpisodeStatus
except ImportError:  # pip install without the colcon build: recorder following is unavailable
    EpisodeStatus = None


def message_class(msg_type: str) -> type:
    """'sensor_msgs/msg/JointState' -> the rclpy message class."""
    package, _, name = msg_type.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy_node")
        p = self._declare_parameters()
        if not p.policy_path:
            raise DeployError("parameter policy_path is empty: pass -p policy_path:=<.../pretrained_model>")
        self.contract = load_contract(p.contract)
        import torch

        from apprentice.policies import load_policy

        # Auto: half the cores (at most 4). Measured on a busy 2-core box: one thread 16 ms per ACT
        # chunk, two threads competing with the sim and the ROS executor 560 ms.
        threads = p.torch_threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        torch.set_num_threads(threads)
        device = p.device if p.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        policy = load_policy(p.policy_path, device=device)
        limits = p.safety_limits(list(self.contract.action.names))
        config = p.runtime_config()
        self.runtime = PolicyRuntime(policy, self.contract, config, limits)
        self.params = p
        self.bad_messages: dict[str, int] = {}

        # Best effort matches reliable and best-effort publishers alike, and only the latest value of
        # each input matters here: a late retransmission would be stale by the time it arrived.
        latest = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        for spec in self.contract.observations:
            qos = qos_profile_sensor_data if spec.msg_type in IMAGE_TYPES else latest
            self.create_subscription(
                message_class(spec.msg_type), spec.topic, lambda msg, s=spec: self._on_message(s, msg), qos
            )
        self.command_type = normalize_type(p.command_type or self.contract.command_type)
        if self.command_type not in COMMAND_TYPES:
            raise DeployError(f"command_type {self.command_type!r} is not one of {', '.join(COMMAND_TYPES)}")
        self.command_topic = p.command_topic or self.contract.command_topic
        msg_cls = JointTrajectory if self.command_type == TRAJECTORY else Float64MultiArray
        self.command_pub = self.create_publisher(msg_cls, self.command_topic, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.timer = self.create_timer(1.0 / self.runtime.fps, self._on_tick)
        self.create_timer(p.diagnostics_period_s, self._publish_diagnostics)
        self.last_reason = ""

        self.book = EvalBook()
        self.eval: dict[str, Any] | None = None
        if p.eval_episodes > 0:
            self._start_evaluation()
        elif p.follow_recorder:
            if EpisodeStatus is None:
                raise DeployError("follow_recorder needs apprentice.msg (source the colcon install)")
            from rclpy.qos import DurabilityPolicy

            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(EpisodeStatus, p.recorder_status_topic, self._on_recorder, latched)
        if p.enabled and self.eval is None:
            self.runtime.enable(True)
        self.get_logger().info(
            f"policy {policy.config.type} from {p.policy_path} on {device}; {self.runtime.fps:g} Hz, "
            f"mode {config.mode}; commands on '{self.command_topic}' ({self.command_type}); "
            + ("enabled" if self.runtime.enabled else "disabled: call ~/enable (std_srvs/SetBool) to start")
        )

    def _declare_parameters(self) -> PolicyNodeParams:
        values = {name: self.declare_parameter(name, d).value for name, d in PolicyNodeParams.defaults().items()}
        return PolicyNodeParams(**values)

    # -- inputs ---------------------------------------------------------------------------------------
    def _on_message(self, spec: Any, msg: Any) -> None:
        stamp = spec.stamp_ns(msg) or self.get_clock().now().nanoseconds  # headerless: receive time
        try:
            value = spec.decode(msg)
        except Exception as exc:  # a malformed message (wrong image size, missing joint) is dropped
            self.bad_messages[spec.topic] = self.bad_messages.get(spec.topic, 0) + 1
            self.get_logger().error(f"{spec.topic}: message dropped: {exc}", throttle_duration_sec=2.0)
            return
        self.runtime.push(spec.key, stamp, value)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.runtime.enable(bool(request.data))
        response.success = True
        response.message = "enabled" if request.data else "disabled"
        self.get_logger().info(f"policy {response.message} by service call")
        return response

    # -- control loop --------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        now = self.get_clock().now().nanoseconds
        if self.eval is not None:
            self._evaluation_tick(now)
        outcome = self.runtime.step(now)
        if outcome.command is not None:
            self._publish_command(outcome.command)
            self.runtime.record_publish(outcome, self.get_clock().now().nanoseconds)
        if self.book.running:
            self.book.record_tick(outcome.command is not None)
        if outcome.reason != self.last_reason:
            # rclpy fixes the severity per call site, hence two calls.
            if outcome.reason in ("ok", "disabled"):
                self.get_logger().info(f"policy: {outcome.reason}")
            else:
                self.get_logger().warning(f"policy: {outcome.reason}")
            self.last_reason = outcome.reason

    def _publish_command(self, positions: Any) -> None:
        if self.command_type == TRAJECTORY:
            msg = JointTrajectory()
            msg.joint_names = list(self.runtime.action_names)
            # Reach the point by the next tick unless told otherwise; stamp 0 = start on receipt.
            horizon = self.params.trajectory_time_from_start_s or 1.0 / self.runtime.fps
            point = JointTrajectoryPoint(positions=[float(v) for v in positions])
            point.time_from_start = Duration(sec=int(horizon), nanosec=int((horizon % 1.0) * 1e9))
            msg.points = [point]
        else:
            msg = Float64MultiArray(data=[float(v) for v in positions])
        self.command_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        values = self.runtime.diagnostics()
        values.update({f"dropped_messages {topic}": float(n) for topic, n in self.bad_messages.items()})
        status = DiagnosticStatus(name=f"{self.get_name()}: policy inference", hardware_id=self.command_topic)
        reason = self.last_reason
        status.level = DiagnosticStatus.OK if reason in ("ok", "disabled", "") else DiagnosticStatus.WARN
        if reason.startswith("watchdog"):
            status.level = DiagnosticStatus.ERROR
        status.message = reason or "starting"
        status.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)

    # -- evaluation: N episodes through a reset service and a success topic ---------------------------
    def _start_evaluation(self) -> None:
        p = self.params
        self.reset_client = self.create_client(Trigger, p.eval_reset_service)
        self.create_subscription(Bool, p.eval_success_topic, self._on_success, 10)
        self.eval = {"phase": "reset", "future": None, "since": 0}

    def _on_success(self, msg: Bool) -> None:
        ev = self.eval
        if ev is None or ev["phase"] in ("reset", "done"):
            return
        # Bool carries no stamp, and a busy executor can deliver the previous episode's last messages
        # after the reset: a True counts only after a False has shown the new episode's state.
        if not msg.data:
            ev["fresh"] = True
        elif ev["phase"] == "run" and ev.get("fresh"):
            elapsed = (self.get_clock().now().nanoseconds - ev["since"]) * 1e-9
            self.book.record_success(True, elapsed)

    def _evaluation_tick(self, now: int) -> None:
        ev, p = self.eval, self.params
        assert ev is not None
        if ev["phase"] == "reset":
            if ev["future"] is None:
                if not self.reset_client.service_is_ready():
                    return
                ev["future"] = self.reset_client.call_async(Trigger.Request())
                ev["fresh"] = False
            elif ev["future"].done():
                reply = ev["future"].result()
                if reply is None or not reply.success:
                    self.get_logger().error(f"{self.params.eval_reset_service} failed: {reply}; retrying")
                    ev["future"] = None
                    return
                seed = re.search(r"seed (\d+)", reply.message)  # the sim node says "episode N (seed S)"
                ev.update(phase="settle", future=None, since=now, seed=int(seed.group(1)) if seed else None)
        elif ev["phase"] == "settle" and (now - ev["since"]) * 1e-9 >= p.eval_settle_s:
            # Settled: inputs from before the reset are older than every max_age by now.
            self.book.start(seed=ev.get("seed"))
            self.runtime.enable(True)
            ev.update(phase="run", since=now)
        elif ev["phase"] == "run":
            elapsed = (now - ev["since"]) * 1e-9
            done = elapsed >= p.eval_episode_time_s
            if done or (p.eval_end_on_success and self.book.current_success):
                self.runtime.enable(False)
                result = self.book.end(elapsed)
                self.get_logger().info(
                    f"eval episode {result.episode_index + 1}/{p.eval_episodes}: "
                    f"{'success' if result.success else 'failure'} ({result.steps} actions, "
                    f"{result.held_ticks} held ticks); success rate so far {self.book.success_rate:.0%}"
                )
                if len(self.book.episodes) >= p.eval_episodes:
                    self._finish_evaluation()
                else:
                    ev.update(phase="reset", future=None)

    def _finish_evaluation(self) -> None:
        assert self.eval is not None
        self.eval["phase"] = "done"
        extra = {
            "policy_path": self.params.policy_path,
            "contract": str(self.contract.source),
            "runtime": self.runtime.diagnostics(),
        }
        path = self.book.write(self.params.eval_output, extra=extra)
        self.get_logger().info(f"evaluation done: success rate {self.book.success_rate:.0%}; wrote {path}")
        self.eval = None
        if self.params.eval_shutdown_when_done:
            request_shutdown()

    # -- hardware evaluation: follow the recorder's episodes ------------------------------------------
    def _on_recorder(self, msg: Any) -> None:
        recording = msg.state == msg.RECORDING
        if recording and not self.runtime.enabled:
            self.runtime.enable(True)  # resets the policy: a new episode starts from a clean queue
            self.get_logger().info(f"recorder episode {msg.episode_index}: policy driving")
        elif not recording and self.runtime.enabled:
            self.runtime.enable(False)
            self.get_logger().info(f"recorder {msg.state_name.lower()}: policy holding")

    def close(self) -> None:
        self.runtime.close()


def _ros_args(argv: Sequence[str]) -> list[str]:
    """`apprentice infer` flags -> `--ros-args -p name:=value ...` (the node's own parameters)."""
    parser = argparse.ArgumentParser(prog="apprentice infer", description="Run a trained policy on a ROS 2 robot.")
    parser.add_argument(
        "--policy.path",
        "--policy-path",
        dest="policy_path",
        help="checkpoint directory (pretrained_model/ with config.json + model.safetensors)",
    )
    # Defaults are the node's own (None = not given): only flags the user typed become -p overrides, so
    # they win over --params-file and nothing else does.
    parser.add_argument("--contract", help="contract YAML or a name in config/contracts/ (node default: sim_reach)")
    parser.add_argument("--device", help="cpu | cuda | auto (node default: auto)")
    parser.add_argument("--task", help="language instruction (default: the contract's task)")
    parser.add_argument("--mode", choices=["sync", "async", "ensemble", "policy"], help="node default: sync")
    parser.add_argument("--n-action-steps", type=int)
    parser.add_argument("--max-relative-step", type=float, help="radians per tick; 0 = off")
    parser.add_argument("--command-topic")
    parser.add_argument(
        "--enable", action="store_true", default=None, help="start commanding at once (else call ~/enable)"
    )
    parser.add_argument("--eval-episodes", type=int, help="run N evaluation episodes and exit")
    parser.add_argument("--eval-episode-time-s", type=float)
    parser.add_argument("--eval-output")
    parser.add_argument("--params-file", help="ROS parameters YAML (e.g. config/infer.yaml)")
    args, rest = parser.parse_known_args(list(argv))
    if args.policy_path is None and args.params_file is None:
        parser.error("--policy.path is required (or a --params-file that sets policy_path)")
    values = {
        "policy_path": args.policy_path,
        "contract": args.contract,
        "device": args.device,
        "task": args.task,
        "mode": args.mode,
        "n_action_steps": args.n_action_steps,
        "max_relative_step": args.max_relative_step,
        "command_topic": args.command_topic,
        "enabled": args.enable,
        "eval_episodes": args.eval_episodes,
        "eval_episode_time_s": args.eval_episode_time_s,
        "eval_output": None if args.eval_output is None else os.path.abspath(args.eval_output),
    }
    ros = ["--ros-args"]
    if args.params_file:
        ros += ["--params-file", args.params_file]
    for name, value in values.items():
        if value is None or value == "":
            continue  # not given (or empty, which does not parse): the params file's or the node's default
        # Values are parsed as YAML: JSON-quote strings so a task like "pick: red" stays one string.
        text = (
            str(value).lower()
            if isinstance(value, bool)
            else json.dumps(value)
            if isinstance(value, str)
            else str(value)
        )
        ros += ["-p", f"{name}:={text}"]
    if rest and rest[0] == "--ros-args":
        rest = rest[1:]
    return ros + rest


def main(argv: Sequence[str] | None = None) -> int:
    args = None if argv is None else ["apprentice-infer", *_ros_args(argv)]
    try:
        return run_node(PolicyNode, args)
    except (DeployError, ContractError, PolicyError) as exc:
        print(f"policy_node: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
