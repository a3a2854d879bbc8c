"""Sim node: a simulated arm behind exactly a real arm's interfaces.

Publishes `joint_states`, `cameras/<camera>/image_raw` (sensor-data QoS), `sim/target`, `sim/is_success`
and, with `publish_clock`, `/clock` (so every other node can run with `use_sim_time:=true`); follows
`forward_position_controller/commands` (Float64MultiArray, radians in joint order) and
`joint_trajectory_controller/joint_trajectory` (JointTrajectory); `sim/reset` starts a new seeded episode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PointStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import run_node
from apprentice.sim import SimError, make_env
from apprentice.sim.cli import resolve_name
from apprentice.sim.trajectory import TrajectoryFollower

PARAMETERS = (
    Param("task", "reach", "sim task: reach | aloha | pusht (or a task id such as AlohaInsertion-v0)"),
    Param("seed", 0, "seed of the first episode; each sim/reset takes the next"),
    Param("publish_clock", False, "publish /clock so other nodes can run with use_sim_time:=true"),
    Param("real_time_factor", 1.0, "simulated seconds per wall-clock second (> 0)"),
    Param("render", True, "render and publish the camera image"),
    Param("image_height", 0, "camera image height; 0 = the task's default (reach 96x128, aloha 480x640)"),
    Param("image_width", 0, "camera image width; 0 = the task's default"),
    Param("frame_id", "base_link", "header.frame_id of published messages"),
)


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        declare_parameters(self, PARAMETERS)
        task = self.get_parameter("task").value
        self.seed = int(self.get_parameter("seed").value)
        self.publish_clock = bool(self.get_parameter("publish_clock").value)
        rtf = float(self.get_parameter("real_time_factor").value)
        if rtf <= 0:
            raise SimError(f"sim node: real_time_factor must be > 0, got {rtf}")
        self.frame_id = str(self.get_parameter("frame_id").value)
        size = {k: int(self.get_parameter(k).value) for k in ("image_height", "image_width")}
        self.env = make_env(
            resolve_name(task),
            seed=self.seed,
            render=bool(self.get_parameter("render").value),
            terminate_on_success=False,
            max_episode_steps=2**62,  # the node runs until stopped; episodes end by `sim/reset`
            **{k: v for k, v in size.items() if v > 0},
        )
        self.joint_names = list(self.env.joint_names)
        self.camera = self.env.camera
        self.episode = 0
        # sim/target carries a point target (reach); other tasks' environment state is not a point.
        self.publishes_target = list(self.env.environment_state_names) == ["target_x", "target_y", "target_z"]
        self.ticks = 0  # physics steps since start: the sim clock, monotonic across resets
        self.follower = TrajectoryFollower(self.joint_names)
        self.command: np.ndarray | None = None
        self.hold: np.ndarray | None = None  # with no command yet, the robot holds its start pose

        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.image_pub = self.create_publisher(
            Image, f"cameras/{self.camera}/image_raw", qos_profile_sensor_data
        )
        self.target_pub = self.create_publisher(PointStamped, "sim/target", 10)
        self.success_pub = self.create_publisher(Bool, "sim/is_success", 10)
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", 10) if self.publish_clock else None
        self.create_subscription(
            Float64MultiArray, "forward_position_controller/commands", self._on_command, 10
        )
        self.create_subscription(
            JointTrajectory, "joint_trajectory_controller/joint_trajectory", self._on_trajectory, 10
        )
        self.create_service(Trigger, "sim/reset", self._on_reset)
        self._reset_episode(self.seed)
        # Wall-clock pacing on a steady clock: the node's own clock may be /clock, which it drives itself.
        period = 1.0 / (self.env.fps * rtf)
        self.create_timer(period, self._tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"sim {task!r}: {self.env.fps} fps, joints {self.joint_names}, camera {self.camera!r}, "
            f"clock {'/clock (sim time)' if self.publish_clock else 'system time'}"
        )

    # ------------------------------------------------------------------------------ commands
    def _on_command(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != len(self.joint_names):
            self.get_logger().error(
                f"forward_position_controller/commands: got {len(msg.data)} values, expected "
                f"{len(self.joint_names)} ({', '.join(self.joint_names)}); command ignored",
                throttle_duration_sec=2.0,
            )
            return
        self.follower.clear()
        self.command = np.asarray(msg.data, dtype=np.float64)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            self.follower.set(
                msg.joint_names,
                [
                    (p.time_from_start.sec + p.time_from_start.nanosec * 1e-9, list(p.positions))
                    for p in msg.points
                ],
                start_s=self._now_s(),
                current=self._current_command(),
            )
        except SimError as exc:
            self.get_logger().error(f"joint_trajectory_controller/joint_trajectory: {exc}")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.episode += 1
        seed = self.seed + self.episode
        self._reset_episode(seed)
        response.success = True
        response.message = f"episode {self.episode} (seed {seed})"
        self._publish(success=False)
        return response

    # ---------------------------------------------------------------------------------- loop
    def _reset_episode(self, seed: int) -> None:
        self.obs, _ = self.env.reset(seed=seed)
        # Every task's action has the state's layout and units, so "hold still" is the start state.
        self.hold = np.asarray(self.obs["observation.state"], dtype=np.float64)
        self.command = None
        self.follower.clear()

    def _current_command(self) -> np.ndarray:
        return self.command if self.command is not None else self.hold

    def _now_s(self) -> float:
        return self.ticks / self.env.fps

    def _tick(self) -> None:
        action = self.follower.sample(self._now_s())
        if action is not None:
            self.command = action
        self.obs, _, _, _, info = self.env.step(self._current_command())
        self.ticks += 1
        self._publish(success=bool(info["is_success"]))

    def _stamp(self) -> Time:
        if self.publish_clock:
            ns = self.ticks * 1_000_000_000 // self.env.fps
            return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        return self.get_clock().now().to_msg()

    def _publish(self, success: bool) -> None:
        stamp = self._stamp()
        if self.clock_pub is not None:
            self.clock_pub.publish(ClockMsg(clock=stamp))
        js = JointState()
        js.header.stamp = stamp
        js.header.frame_id = self.frame_id
        js.name = self.joint_names
        js.position = self.obs["observation.state"].astype(float).tolist()
        velocities = getattr(self.env, "joint_velocities", None)
        if velocities is not None:
            js.velocity = velocities().astype(float).tolist()
        self.joint_pub.publish(js)
        image = self.obs.get(self.env.image_key)
        if image is not None:
            img = Image()
            img.header.stamp = stamp
            img.header.frame_id = f"{self.camera}_camera"
            img.height, img.width = int(image.shape[0]), int(image.shape[1])
            img.encoding = "rgb8"
            img.step = img.width * 3
            img.data = image.tobytes()
            self.image_pub.publish(img)
        env_state = self.obs.get("observation.environment_state")
        if env_state is not None and self.publishes_target:
            target = PointStamped()
            target.header.stamp = stamp
            target.header.frame_id = self.frame_id
            target.point.x, target.point.y, target.point.z = (float(v) for v in env_state)
            self.target_pub.publish(target)
        self.success_pub.publish(Bool(data=success))

    def close(self) -> None:
        self.env.close()


def main(argv: Sequence[str] | None = None) -> int:
    return run_node(SimNode, argv, usage=node_help("sim_node", __doc__, PARAMETERS))


if __name__ == "__main__":
    raise SystemExit(main())
