"""RL actor node: the policy node's HIL-SERL mode — acts on a ROS 2 robot, streams transitions to a learner.

    apprentice rl-actor --ros-args -p contract:=sim_reach -p config:=online.yaml \
        -p learner_host:=gpu-box -p learner_port:=50051

Observations come from the contract's topics at its fps; actions go to its command topic. While the
Bool on `intervention_topic` is true the operator drives: the contract's action topic (the leader arm)
is relayed as the command and stored as the action, flagged as an intervention. An episode ends on
the success topic or after `episode_time_s`; the node then calls `reset_service` (std_srvs/Trigger,
e.g. the sim's `sim/reset`), waits `reset_time_s` and starts the next. Weights from the learner are
loaded between ticks. The logic is `apprentice.rl.stream_actor.StreamActor`; this node wires it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from builtin_interfaces.msg import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from apprentice.contract import IMAGE_TYPES, TRAJECTORY, ContractError, load_contract
from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import message_class, run_node

PARAMETERS = (
    Param("contract", "sim_reach", "contract name or path: observation topics, action (leader) topic, command"),
    Param("config", "", "the online run's JSON/YAML (algorithm + client sections; the learner's file)"),
    Param("learner_host", "", "learner address; empty: the config's client.learner_host"),
    Param("learner_port", 0, "learner port; 0: the config's client.learner_port"),
    Param("episode_time_s", 10.0, "episode time limit (truncated after fps * this many ticks)"),
    Param("reset_service", "sim/reset", "std_srvs/Trigger called between episodes; empty: none"),
    Param("reset_time_s", 1.0, "wait after the reset before the next episode starts"),
    Param("success_topic", "sim/is_success", "std_msgs/Bool: true ends the episode as a success"),
    Param("reward_topic", "", "std_msgs/Float64 reward (e.g. a reward classifier); empty: 1 on success, else 0"),
    Param("intervention_topic", "intervention", "std_msgs/Bool: true while the operator drives (leader arm)"),
    Param("terminate_on_success", True, "a success ends the episode (terminated)"),
)


class RLActorNode(Node):
    def __init__(self, algorithm: Any = None, parameter_overrides: list | None = None) -> None:
        super().__init__("rl_actor", parameter_overrides=parameter_overrides or [])
        p = declare_parameters(self, PARAMETERS)
        from apprentice.rl.run_config import load_run_config, make_algorithm
        from apprentice.rl.stream_actor import StreamActor, contract_features
        from apprentice.rl.transport.actor_client import ActorClient

        self.contract = load_contract(p["contract"])
        features = contract_features(self.contract)
        run = load_run_config(p["config"]) if p["config"] else None
        if algorithm is None:
            if run is None:
                raise ValueError("parameter config is empty: pass -p config:=<online run JSON/YAML>")
            algorithm = make_algorithm(run.algorithm, features)
        client_config = run.client_config() if run is not None else None
        if client_config is None:
            from apprentice.rl.transport.actor_client import ActorClientConfig

            client_config = ActorClientConfig()
        if p["learner_host"]:
            client_config.learner_host = p["learner_host"]
        if p["learner_port"]:
            client_config.learner_port = int(p["learner_port"])
        self.client = ActorClient(features, client_config)
        self.client.connect()  # a refused handshake (features differ) fails the node here, with the reason
        steps = max(1, round(float(p["episode_time_s"]) * self.contract.fps))
        self.actor = StreamActor(self.contract, algorithm, self.client, steps, bool(p["terminate_on_success"]))
        self.params = p
        self.reward_from_success = not p["reward_topic"]

        latest = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        for spec in [*self.contract.observations, self.contract.action]:
            qos = qos_profile_sensor_data if spec.msg_type in IMAGE_TYPES else latest
            self.create_subscription(message_class(spec.msg_type), spec.topic,
                                     lambda msg, s=spec: self._on_message(s, msg), qos)
        self.create_subscription(Bool, p["success_topic"], self._on_success, 10)
        self.create_subscription(Bool, p["intervention_topic"], self._on_intervention, 10)
        if p["reward_topic"]:
            self.create_subscription(Float64, p["reward_topic"], self._on_reward, 10)
        trajectory = self.contract.command_type == TRAJECTORY
        self.command_pub = self.create_publisher(JointTrajectory if trajectory else Float64MultiArray,
                                                 self.contract.command_topic, 10)
        self.reset_client = self.create_client(Trigger, p["reset_service"]) if p["reset_service"] else None
        self._reset_future: Any = None
        self._start_after: float | None = time.monotonic()  # the first episode starts at once
        self.last_reason = ""
        self.create_timer(1.0 / self.contract.fps, self._on_tick)
        self.get_logger().info(f"RL actor on contract {self.contract.source}: {self.contract.fps} Hz, commands on "
                               f"{self.contract.command_topic}, learner {self.client.address}")

    # -- inputs -----------------------------------------------------------------------------------------
    def _on_message(self, spec: Any, msg: Any) -> None:
        try:
            value = spec.decode(msg)
        except Exception as exc:  # a malformed message (wrong size, missing joint) is dropped, loudly
            self.get_logger().error(f"{spec.topic}: message dropped: {exc}", throttle_duration_sec=2.0)
            return
        self.actor.push(spec.key, spec.stamp_ns(msg) or self.get_clock().now().nanoseconds, value)

    def _on_success(self, msg: Bool) -> None:
        if msg.data and self.actor.running and not self.actor.success:
            self.actor.success = True
            if self.reward_from_success:
                self.actor.reward += 1.0

    def _on_reward(self, msg: Float64) -> None:
        if self.actor.running:
            self.actor.reward += float(msg.data)

    def _on_intervention(self, msg: Bool) -> None:
        self.actor.intervention = bool(msg.data)

    # -- the tick ---------------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        if not self.actor.running:
            self._advance_reset()
            return
        result = self.actor.tick(self.get_clock().now().nanoseconds)
        if result.command is not None:
            self._publish(result.command)
        if result.episode_done:
            self._request_reset()
        if result.reason != self.last_reason:
            self.get_logger().info(f"rl actor: {result.reason}")
            self.last_reason = result.reason

    def _publish(self, positions: Any) -> None:
        if self.contract.command_type == TRAJECTORY:
            point = JointTrajectoryPoint(positions=[float(v) for v in positions])
            period = 1.0 / self.contract.fps
            point.time_from_start = Duration(sec=int(period), nanosec=int((period % 1.0) * 1e9))
            msg = JointTrajectory(joint_names=list(self.contract.action.names), points=[point])
        else:
            msg = Float64MultiArray(data=[float(v) for v in positions])
        self.command_pub.publish(msg)

    def _request_reset(self) -> None:
        if self.reset_client is None:
            self._start_after = time.monotonic() + float(self.params["reset_time_s"])
            return
        if not self.reset_client.service_is_ready():
            self.get_logger().warning(f"{self.params['reset_service']} is not available; retrying",
                                      throttle_duration_sec=2.0)
        self._reset_future = self.reset_client.call_async(Trigger.Request())
        self._start_after = None

    def _advance_reset(self) -> None:
        if self._reset_future is not None and self._reset_future.done():
            self._reset_future = None
            self._start_after = time.monotonic() + float(self.params["reset_time_s"])
        if self._start_after is not None and time.monotonic() >= self._start_after:
            self._start_after = None
            self.actor.start_episode()

    def close(self) -> None:
        self.client.close(flush_timeout_s=5.0)


def main(argv: Sequence[str] | None = None) -> int:
    """`ros2 run apprentice rl_actor_node --ros-args ...`; with `argv`, the ROS arguments of `apprentice rl-actor`."""
    from apprentice.rl.checkpoint import LearnerError
    from apprentice.rl.transport import TransportError

    args = None if argv is None else ["apprentice-rl-actor", *argv]
    try:
        return run_node(RLActorNode, args, usage=node_help("rl_actor_node", __doc__, PARAMETERS))
    except (ContractError, LearnerError, TransportError, ValueError) as exc:
        print(f"rl_actor_node: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
