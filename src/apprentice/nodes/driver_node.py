"""Driver node: a Feetech/Dynamixel servo arm behind ros2_control-style interfaces.

Publishes `joint_states` (sensor_msgs/JointState, radians, stamped at read time) at `rate_hz`; follows
`<controller>/commands` (std_msgs/Float64MultiArray, radians in joint order) and
`<trajectory_controller>/joint_trajectory` (trajectory_msgs/JointTrajectory); `~/enable_torque`
(std_srvs/SetBool) switches torque; bus health goes to `diagnostics` (diagnostic_msgs/DiagnosticArray).
`port:=virtual` runs the arm on an in-process virtual servo bus (no hardware). A two-arm robot
(`bi_so101_follower`) takes `port:=/dev/ttyACM0,/dev/ttyACM1` (left, right); a robot with wheels (`lekiwi`)
also follows `cmd_vel` and publishes `odom` (see mobile_base.py).
`publish_end_effector_pose:=true` adds FK of the measured joints on `/tf` and `end_effector_pose`
(geometry_msgs/PoseStamped), from the robot's config/kinematics file (or the `kinematics` parameter).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from apprentice.motors import BusError, load_calibration
from apprentice.motors.port import latency_timer_warning
from apprentice.nodes.end_effector_pose import EndEffectorPosePublisher
from apprentice.nodes.mobile_base import BASE_PARAMETERS, MobileBase
from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import run_node
from apprentice.robots import (
    Arm,
    BimanualArm,
    BimanualDefinition,
    RobotDefinition,
    RobotError,
    default_calibration_path,
    find_calibration_file,
    legacy_calibration_path,
    load_definition,
)
from apprentice.robots.trajectory import TrajectoryPlayer
from apprentice.robots.virtual_arm import VirtualRobot, make_virtual_robot
from apprentice.teleop import TeleopError


def open_arm(node: Node, prefix: str = "") -> tuple[Arm | BimanualArm, VirtualRobot | None]:
    """Build an Arm from the node's `<prefix>robot_type`, `port`, `robot_id`, `calibration_file` parameters.

    Shared by the driver and teleop nodes. The calibration file is, in order: the parameter, the newest
    LeRobot's file for (type, id), lerobot < 0.4.3's, else the calibration the motors already hold.
    A two-arm robot takes two ports and two calibration files, comma-separated, left first.
    """
    p = {
        name: node.get_parameter(prefix + name).value for name in ("robot_type", "port", "robot_id", "calibration_file")
    }
    definition = load_definition(p["robot_type"])
    virtual = None
    port = p["port"]
    if not port:
        raise RobotError(
            f"{node.get_name()}: parameter {prefix}port is empty; give the serial port "
            "(e.g. /dev/ttyACM0) or `virtual` for a simulated bus"
        )
    if port == "virtual":
        motion = node.get_parameter(prefix + "virtual_motion").value
        virtual = make_virtual_robot(definition, motion=motion)
        port = virtual.start()
    ports = port.split(",")
    if isinstance(definition, BimanualDefinition):
        arm_ids = [(definition.arms[side], i) for side, i in definition.arm_ids(p["robot_id"]).items()]
    else:
        arm_ids = [(definition, p["robot_id"])]
    given = p["calibration_file"].split(",") if p["calibration_file"] else []
    if given and len(given) != len(arm_ids):
        raise RobotError(
            f"{node.get_name()}: parameter {prefix}calibration_file needs {len(arm_ids)} comma-separated file(s) "
            f"for {definition.type}, got {len(given)}"
        )
    files: list[Path | None] = [Path(f) for f in given] or [find_calibration_file(d, i) for d, i in arm_ids]
    calibrations = [load_calibration(f) if f is not None else None for f in files]
    for one_port in ports:
        if (warning := latency_timer_warning(one_port)) is not None:
            node.get_logger().warning(warning)
    mrt = float(node.get_parameter(prefix + "max_relative_target").value)
    options = {
        "max_relative_target": mrt if mrt > 0 else None,
        "torque_off_on_error": bool(node.get_parameter("torque_off_on_error").value),
        "num_retry": int(node.get_parameter("num_retry").value),
    }
    if isinstance(definition, BimanualDefinition):
        arm: Arm | BimanualArm = BimanualArm(
            definition, ports, calibration=dict(zip(definition.arms, calibrations)), **options
        )
    else:
        arm = Arm(definition, port, calibration=calibrations[0], **options)
    node.get_logger().info(
        f"{definition.type} on {port}"
        + (" (virtual bus)" if virtual else "")
        + f", calibration: {', '.join(_calibration_source(f, d, i) for f, (d, i) in zip(files, arm_ids))}"
    )
    return arm, virtual


def _calibration_source(path: Path | None, definition: RobotDefinition, robot_id: str) -> str:
    """Which file an arm's calibration came from, for the start-up log; says when it is the fallback."""
    newest = default_calibration_path(definition, robot_id)
    if path is None:
        return f"read from the motors (no {newest})"
    if path == legacy_calibration_path(definition, robot_id):
        return f"{path} (lerobot < 0.4.3 layout; lerobot >= 0.4.3 reads {newest})"
    return str(path)


def arm_parameters(prefix: str, robot_type: str) -> tuple[Param, ...]:
    """The servo arm's parameters (driver: no prefix; teleop's leader: `leader_`)."""
    return (
        Param(prefix + "robot_type", robot_type, "robot definition: a type in config/robots/ or a YAML path"),
        Param(prefix + "port", "", "serial port (/dev/ttyACM0) or 'virtual' for the in-process virtual bus"),
        Param(prefix + "robot_id", "default", "calibration id (LeRobot's --robot.id)"),
        Param(
            prefix + "calibration_file",
            "",
            "calibration JSON; '' = lerobot's file for robot_id (newest layout, else pre-0.4.3), if there",
        ),
        Param(prefix + "max_relative_target", 0.0, "largest change per command in radians; 0 = no clamp"),
        Param(prefix + "virtual_motion", "none", "with port:=virtual: none | sine (each joint sways on its own)"),
    )


PARAMETERS = (
    *arm_parameters("", "so101_follower"),
    Param("rate_hz", 100.0, "joint_states rate (one SYNC_READ per tick)"),
    Param("controller", "forward_position_controller", "listen on <controller>/commands"),
    Param("trajectory_controller", "joint_trajectory_controller", "listen on <trajectory_controller>/joint_trajectory"),
    Param("torque_off_on_error", True, "release torque when the bus fails"),
    Param("disable_torque_on_shutdown", True, "release torque when the node stops"),
    Param("num_retry", 3, "retries of a failed bus transaction"),
    # Fills JointState.velocity in rad/s; the same SYNC_READ carries it (one wider block per tick).
    Param("publish_velocity", True, "fill JointState.velocity (rad/s) from the same read"),
    Param("publish_end_effector_pose", False, "publish FK of the measured joints on /tf and end_effector_pose_topic"),
    Param("kinematics", "", "kinematics name or YAML (config/kinematics/); '' = the robot type's"),
    Param("end_effector_pose_topic", "end_effector_pose", "geometry_msgs/PoseStamped of the end effector"),
    Param("tf_prefix", "", "prefix of the tf frame ids, e.g. 'left/' when two arms share one tf tree"),
)


def diagnostic_status(
    node: Node, arm: Arm | BimanualArm, level: bytes, message: str, rate_hz: float
) -> DiagnosticStatus:
    health = arm.health
    values = {
        "robot_type": arm.definition.type,
        "port": arm.port,
        "torque_enabled": str(arm.torque_enabled),
        "rate_hz": f"{rate_hz:.1f}",
        "transactions": str(health.transactions),
        "retries": str(health.retries),
        "failures": str(health.failures),
        "last_error": health.last_error,
    }
    values.update({f"alarm.{m}": str(e) for m, e in health.hardware_errors.items()})
    return DiagnosticStatus(
        level=level,
        name=f"{node.get_name()}: {arm.definition.type} servo bus",
        message=message,
        hardware_id=arm.port,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


class DriverNode(Node):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("driver", **kwargs)
        declare_parameters(self, PARAMETERS)
        self.arm, self.virtual = open_arm(self)
        try:
            self.ee_pose = (
                EndEffectorPosePublisher(
                    self,
                    self.arm.definition,
                    str(self.get_parameter("kinematics").value),
                    str(self.get_parameter("end_effector_pose_topic").value),
                    str(self.get_parameter("tf_prefix").value),
                )
                if self.get_parameter("publish_end_effector_pose").value
                else None
            )
            self.arm.connect()
        except (BusError, TeleopError):
            self._stop_virtual()
            raise
        self.joint_names = self.arm.joint_names
        self.command: np.ndarray | None = None
        self.trajectory: TrajectoryPlayer | None = None
        self.error = ""
        self._retry_at = 0.0
        self.publish_velocity = bool(self.get_parameter("publish_velocity").value)
        self._reads = 0
        self._rate_t0 = time.monotonic()
        self.rate = 0.0

        controller = self.get_parameter("controller").value
        trajectory_controller = self.get_parameter("trajectory_controller").value
        self.state_pub = self.create_publisher(JointState, "joint_states", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        # Commands get their own group: in a multi-threaded executor a bus loop that overruns its period
        # keeps its timer ready, and a subscription sharing its group would never be picked (starved).
        commands = MutuallyExclusiveCallbackGroup()
        self.create_subscription(
            Float64MultiArray, f"{controller}/commands", self._on_command, 10, callback_group=commands
        )
        self.create_subscription(
            JointTrajectory,
            f"{trajectory_controller}/joint_trajectory",
            self._on_trajectory,
            10,
            callback_group=commands,
        )
        # A mobile base (LeKiwi's wheels) on the same bus: cmd_vel in, odom out, run from the bus loop.
        self.base = MobileBase(self, self.arm, commands) if self.arm.wheel_names else None
        self.create_service(SetBool, "~/enable_torque", self._on_enable_torque)
        self.create_timer(1.0 / float(self.get_parameter("rate_hz").value), self._tick)
        # Own callback group: a slow, failing bus must not starve the health report that explains it.
        self.create_timer(1.0, self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup())

    # -- inputs -------------------------------------------------------------------------------------
    def _on_command(self, msg: Float64MultiArray) -> None:
        command = np.asarray(msg.data, dtype=float)
        if command.shape != (len(self.joint_names),) or not np.all(np.isfinite(command)):
            self.get_logger().error(
                f"commands: need {len(self.joint_names)} finite values ({', '.join(self.joint_names)}), "
                f"got {command.tolist()}; command ignored",
                throttle_duration_sec=2.0,
            )
            return
        if not self.arm.torque_enabled:
            self.get_logger().warning(
                "commands ignored: torque is off (call ~/enable_torque with true)", throttle_duration_sec=5.0
            )
        self.trajectory = None
        self.command = command

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        unknown = sorted(set(msg.joint_names) - set(self.joint_names))
        if unknown or not msg.points:
            self.get_logger().error(
                f"joint_trajectory: unknown joints {unknown} or no points; ignored (joints are {self.joint_names})"
            )
            return
        bad = [
            i
            for i, p in enumerate(msg.points)
            if len(p.positions) != len(msg.joint_names) or not np.all(np.isfinite(p.positions))
        ]
        if bad:
            self.get_logger().error(
                f"joint_trajectory: point(s) {bad} need {len(msg.joint_names)} finite "
                f"positions for {list(msg.joint_names)}; ignored"
            )
            return
        start = self.command if self.command is not None else self.arm.present.copy()
        index = [self.joint_names.index(n) for n in msg.joint_names]
        points = np.tile(start, (len(msg.points), 1))
        points[:, index] = [list(p.positions) for p in msg.points]
        times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
        # header.stamp: when the trajectory starts (zero = now), as joint_trajectory_controller reads it
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        delay = max(0.0, (stamp_ns - self.get_clock().now().nanoseconds) * 1e-9) if stamp_ns else 0.0
        try:
            self.trajectory = TrajectoryPlayer(time.monotonic() + delay, start, times, points)
        except RobotError as exc:
            self.get_logger().error(f"joint_trajectory: {exc}")

    def _on_enable_torque(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        # Drop pending goals either way: re-enabling must hold the present pose, not jump to an old command.
        self.command, self.trajectory = None, None
        if self.base is not None:
            self.base.stop()
        try:
            self.arm.set_torque(bool(request.data))
            self.error = ""
            response.success, response.message = True, f"torque {'enabled' if request.data else 'disabled'}"
        except BusError as exc:
            response.success, response.message = False, str(exc)
        return response

    # -- loop ---------------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.error and time.monotonic() < self._retry_at:
            return  # a failed bus is retried twice a second, not hammered at rate_hz
        stamp = self.get_clock().now().to_msg()  # read time: taken just before the SYNC_READ goes out
        try:
            if self.publish_velocity:
                positions, velocities = self.arm.read_positions_and_velocities()
            else:
                positions, velocities = self.arm.read_positions(), None
        except BusError as exc:
            self._report(str(exc))
            return
        if self.error:
            self.get_logger().info("servo bus answers again; torque stays as it is (see ~/enable_torque)")
            self.error = ""
        state = JointState(name=self.joint_names, position=positions.tolist())
        if velocities is not None:
            state.velocity = velocities.tolist()
        state.header.stamp = stamp
        self.state_pub.publish(state)
        if self.ee_pose is not None:
            pose, tf = self.ee_pose.messages(positions, stamp)
            self.ee_pose.pose_pub.publish(pose)
            if tf is not None:
                self.ee_pose.tf_pub.publish(tf)
        self._reads += 1
        if self.trajectory is not None:
            now = time.monotonic()
            self.command = self.trajectory.sample(now)
            if self.trajectory.finished(now):
                self.trajectory = None
        try:
            if self.command is not None and self.arm.torque_enabled:
                self.arm.send_positions(self.command)
            if self.base is not None:
                self.base.odom_pub.publish(self.base.tick())
        except BusError as exc:
            self._report(str(exc))

    def _report(self, message: str) -> None:
        if message != self.error:
            self.get_logger().error(message)
        self.error = message
        self._retry_at = time.monotonic() + 0.5
        self.command, self.trajectory = None, None
        if self.base is not None:
            self.base.stop()

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        self.rate = self._reads / max(1e-9, now - self._rate_t0)
        self._reads, self._rate_t0 = 0, now
        if self.error:
            level, message = DiagnosticStatus.ERROR, self.error
        elif self.arm.health.hardware_errors:
            level, message = DiagnosticStatus.WARN, "motor alarm"
        else:
            level, message = DiagnosticStatus.OK, f"{self.rate:.0f} Hz"
        array = DiagnosticArray(status=[diagnostic_status(self, self.arm, level, message, self.rate)])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Called by run_node on shutdown: release torque (unless told not to) and the port."""
        try:
            self.arm.disconnect(disable_torque=bool(self.get_parameter("disable_torque_on_shutdown").value))
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
        return run_node(DriverNode, argv, usage=node_help("driver_node", __doc__, PARAMETERS + BASE_PARAMETERS))
    except (BusError, TeleopError) as exc:  # bad port/robot/calibration/kinematics: one line, not a traceback
        print(f"driver: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
