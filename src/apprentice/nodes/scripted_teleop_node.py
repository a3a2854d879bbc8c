"""Scripted teleop node: the sim task's expert plays the leader arm.

Reads what a teleoperator would see (`joint_states`, and the task's target on `sim/target`), publishes
the expert's action as `leader/joint_states` and, like a real teleop node, commands the follower on
`forward_position_controller/commands`. A new target (after `sim/reset`) starts a new expert plan.
Runs on the node clock, so with `use_sim_time:=true` it ticks on the sim node's /clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import run_node
from apprentice.sim import SimError, make_env, make_expert

PARAMETERS = (
    Param("task", "reach", "sim task whose scripted expert plays the leader"),
    Param("fps", 0.0, "rate of leader/joint_states and commands; 0 = the task's own fps"),
    Param("publish_commands", True, "also command the follower on forward_position_controller/commands"),
)


class ScriptedTeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("scripted_teleop")
        declare_parameters(self, PARAMETERS)
        task = str(self.get_parameter("task").value)
        # The env is built only for its model (the expert's IK); it never steps or renders here.
        self.env = make_env(task, render=False)
        if "observation.environment_state" not in self.env.observation_space.spaces:
            raise SimError(
                f"scripted teleop: task {task!r} has no observation.environment_state on a topic; its expert "
                "needs the simulator's privileged state: record it with `apprentice sim record` instead"
            )
        self.expert = make_expert(self.env)
        self.joint_names = list(self.env.joint_names)
        fps = float(self.get_parameter("fps").value) or float(self.env.fps)
        self.state: np.ndarray | None = None
        self.state_stamp = -1
        self.target: np.ndarray | None = None
        self.target_stamp = -1
        self.planned_for: np.ndarray | None = None
        self.leader_pub = self.create_publisher(JointState, "leader/joint_states", 10)
        self.command_pub = (
            self.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
            if self.get_parameter("publish_commands").value
            else None
        )
        self.create_subscription(JointState, "joint_states", self._on_joint_states, 10)
        self.create_subscription(PointStamped, "sim/target", self._on_target, 10)
        self.create_timer(1.0 / fps, self._tick)
        self.get_logger().info(f"scripted teleop for {task!r} at {fps:g} Hz")

    def _on_joint_states(self, msg: JointState) -> None:
        by_name = dict(zip(msg.name, msg.position))
        missing = [n for n in self.joint_names if n not in by_name]
        if missing:
            self.get_logger().error(f"joint_states lacks joints {missing}", throttle_duration_sec=2.0)
            return
        self.state = np.array([by_name[n] for n in self.joint_names], dtype=np.float32)
        self.state_stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def _on_target(self, msg: PointStamped) -> None:
        self.target = np.array([msg.point.x, msg.point.y, msg.point.z], dtype=np.float32)
        self.target_stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def _tick(self) -> None:
        if self.state is None or self.target is None:
            return  # nothing to teleoperate until the robot and its task are visible
        obs = {"observation.state": self.state, "observation.environment_state": self.target}
        if self.planned_for is None or not np.allclose(self.planned_for, self.target, atol=1e-6):
            if self.state_stamp < self.target_stamp:
                return  # a new episode: plan from the arm's state in it, not the last one's end pose
            self.expert.reset(obs)
            self.planned_for = self.target.copy()
        action = np.asarray(self.expert.act(obs), dtype=np.float64)
        leader = JointState()
        leader.header.stamp = self.get_clock().now().to_msg()
        leader.name = self.joint_names
        leader.position = action.tolist()
        self.leader_pub.publish(leader)
        if self.command_pub is not None:
            self.command_pub.publish(Float64MultiArray(data=action.tolist()))

    def close(self) -> None:
        self.env.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_node(ScriptedTeleopNode, argv, usage=node_help("scripted_teleop_node", __doc__, PARAMETERS))


if __name__ == "__main__":
    raise SystemExit(main())
