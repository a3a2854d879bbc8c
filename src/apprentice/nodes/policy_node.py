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
Who commands each tick — the policy, a person taking over with the leader arm (`~/takeover`, or
leader motion beyond `takeover_threshold`), or nobody — is `apprentice.deploy.rollout.Rollout`'s call;
the node publishes the intervention flag on `intervention` and the latched watchdog fault on `~/fault`.
A `std_msgs/String` on `task_topic` (default `task`) changes the language instruction: the next chunk's
inference uses it, the chunk being executed is kept.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from apprentice.contract import (
    COMMAND_TYPES,
    IMAGE_TYPES,
    JOINT_STATE,
    TRAJECTORY,
    ContractError,
    FeatureSpec,
    load_contract,
    normalize_type,
)
from apprentice.deploy import DeployError, EvalBook
from apprentice.deploy.params import PolicyNodeParams
from apprentice.deploy.rollout import Rollout
from apprentice.deploy.runtime import PolicyRuntime
from apprentice.deploy.takeover import Takeover
from apprentice.nodes.params import dataclass_parameters, declare_parameters, node_help
from apprentice.nodes.runtime import message_class, request_shutdown, run_node
from apprentice.policies import PolicyError

try:
    from apprentice.msg import EpisodeStatus
except ImportError:  # pip install without the colcon build: recorder following is unavailable
    EpisodeStatus = None

PARAMETERS = dataclass_parameters(PolicyNodeParams)


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy_node")
        p = self._declare_parameters()
        if not p.policy_path and not p.server:
            raise DeployError(
                "parameter policy_path is empty: pass -p policy_path:=<.../pretrained_model> "
                "(or -p server:=host:port for a policy server)"
            )
        self.contract = load_contract(p.contract)
        import torch

        from apprentice.policies import load_policy

        # Auto: half the cores (at most 4). Measured on a busy 2-core box: one thread 16 ms per ACT
        # chunk, two threads competing with the sim and the ROS executor 560 ms.
        threads = p.torch_threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        torch.set_num_threads(threads)
        if p.server:  # the model runs on the server; observations and chunks cross the network
            from apprentice.deploy.remote.client import RemotePolicy

            policy, device = RemotePolicy(self.contract, p.client_config()), f"server {p.server}"
        else:
            device = p.device if p.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            policy = load_policy(p.policy_path, device=device)
        limits = p.safety_limits(list(self.contract.action.names))
        config = p.runtime_config()
        self.runtime = PolicyRuntime(policy, self.contract, config, limits)
        self.get_logger().info(f"warm-up inference: {self.runtime.warmup() * 1e3:.0f} ms")
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
        if p.task_topic:
            self.create_subscription(String, p.task_topic, self._on_task, 10)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self._init_rollout(p)
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
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(EpisodeStatus, p.recorder_status_topic, self._on_recorder, latched)
        if p.enabled and self.eval is None:
            self.rollout.on_enable(True)
        self.get_logger().info(
            f"policy {policy.config.type} from {p.policy_path or policy.config.path} on {device}; "
            f"{self.runtime.fps:g} Hz, "
            f"mode {config.mode}{' + RTC' if self.runtime.rtc is not None else ''}; task {self.runtime.task!r}; "
            f"commands on '{self.command_topic}' ({self.command_type}); "
            + ("enabled" if self.runtime.enabled else "disabled: call ~/enable (std_srvs/SetBool) to start")
        )

    def _declare_parameters(self) -> PolicyNodeParams:
        return PolicyNodeParams(**declare_parameters(self, PARAMETERS))

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

    def _on_task(self, msg: String) -> None:
        if self.runtime.set_task(msg.data):
            topic = self.params.task_topic
            self.get_logger().info(f"task: {self.runtime.task!r} (from {topic}; the next chunk uses it)")

    def _init_rollout(self, p: PolicyNodeParams) -> None:
        """Takeover, intervention flag and latched-fault wiring (see apprentice.deploy.rollout)."""
        takeover = Takeover(p.takeover_config(self.contract.action.max_age_s))
        self.rollout = Rollout(self.runtime, takeover, follow_recorder=p.follow_recorder)
        # The leader's targets in command units (radians), in the action's joint order.
        self.leader_spec = FeatureSpec(
            key="action", topic=p.takeover_leader_topic, msg_type=JOINT_STATE, names=list(self.runtime.action_names)
        )
        latest = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(JointState, p.takeover_leader_topic, self._on_leader, latest)
        self.create_service(SetBool, "~/takeover", self._on_takeover)
        self.intervention_pub = self.create_publisher(Bool, p.intervention_topic, 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.fault_pub = self.create_publisher(String, "~/fault", latched)
        self.published_fault: str | None = None

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.message = self.rollout.on_enable(bool(request.data))
        response.success = True
        self.get_logger().info(f"policy {response.message} by service call")
        self._publish_fault()
        return response

    def _on_takeover(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.success, response.message = self.rollout.on_takeover(bool(request.data))
        self.get_logger().info(f"~/takeover {bool(request.data)}: {response.message}")
        return response

    def _on_leader(self, msg: JointState) -> None:
        try:
            positions = self.leader_spec.decode(msg)
        except ContractError as exc:
            self.get_logger().error(f"{self.leader_spec.topic}: {exc}", throttle_duration_sec=2.0)
            return
        stamp = self.leader_spec.stamp_ns(msg) or self.get_clock().now().nanoseconds
        started = self.rollout.on_leader(stamp, positions)
        if started:
            self.get_logger().warning(f"human takeover: {started}; ~/takeover false hands back to the policy")

    def _publish_fault(self) -> None:
        """The latched watchdog fault on ~/fault (transient local: the recorder shows it), at each change."""
        fault = self.runtime.fault
        if fault != self.published_fault:
            self.fault_pub.publish(String(data=fault))
            self.published_fault = fault

    def _check_command_topic(self) -> None:
        """Two nodes commanding one arm fight: with the recorder (a teleop node is likely around), a second
        publisher on the command topic stops this node commanding until it goes away."""
        if not self.params.follow_recorder:
            return
        others = self.count_publishers(self.command_topic) - 1
        conflict = (
            f"{others} other publisher(s) on {self.command_topic}; run the teleop node with "
            "forward_commands:=false so that only this node commands the arm"
            if others > 0
            else ""
        )
        if conflict != self.rollout.conflict:
            if conflict:  # rclpy fixes a logger call site's severity: one call per severity
                self.get_logger().error(conflict)
            else:
                self.get_logger().info(f"{self.command_topic}: this node is its only publisher again")
            self.rollout.conflict = conflict

    # -- control loop --------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        now = self.get_clock().now().nanoseconds
        if self.eval is not None:
            self._evaluation_tick(now)
        tick = self.rollout.step(now)
        outcome = tick.outcome
        # The flag goes out before the command it describes: both are sampled by receive time.
        self.intervention_pub.publish(Bool(data=tick.intervention))
        if outcome.command is not None:
            self._publish_command(outcome.command)
            self.runtime.record_publish(outcome, self.get_clock().now().nanoseconds)
        self._publish_fault()
        if self.book.running:
            self.book.record_tick(outcome.command is not None)
        if outcome.reason != self.last_reason:
            # rclpy fixes the severity per call site, hence two calls.
            if outcome.reason in ("ok", "disabled", "takeover"):
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
        self._check_command_topic()
        values = self.runtime.diagnostics()
        values.update(takeover=str(self.rollout.takeover.active), takeovers=float(self.rollout.takeover.takeovers))
        values.update({f"dropped_messages {topic}": float(n) for topic, n in self.bad_messages.items()})
        status = DiagnosticStatus(name=f"{self.get_name()}: policy inference", hardware_id=self.command_topic)
        reason = self.last_reason
        status.level = DiagnosticStatus.OK if reason in ("ok", "disabled", "takeover", "") else DiagnosticStatus.WARN
        if reason.startswith("watchdog"):
            status.level = DiagnosticStatus.ERROR
        status.message = reason or "starting"
        if self.runtime.fault:  # latched: stays ERROR between episodes too, until ~/enable true
            status.level = DiagnosticStatus.ERROR
            status.message = f"watchdog latched: {self.runtime.fault}; call ~/enable true to re-arm"
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
        if recording and not self.rollout.recording:
            self._check_command_topic()
        line = self.rollout.on_recorder(recording, msg.episode_index)
        if line is not None:
            if self.runtime.fault:  # one call site per severity (rclpy)
                self.get_logger().warning(line)
            else:
                self.get_logger().info(line)

    def close(self) -> None:
        self.runtime.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`ros2 run apprentice policy_node --ros-args ...`; with `argv`, ROS arguments from nodes/infer_cli.py."""
    args = None if argv is None else ["apprentice-infer", *argv]
    try:
        return run_node(PolicyNode, args, usage=node_help("policy_node", __doc__, PARAMETERS))
    except (DeployError, ContractError, PolicyError) as exc:
        print(f"policy_node: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
