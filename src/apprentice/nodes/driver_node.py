"""Driver node: a Feetech/Dynamixel servo arm behind ros2_control-style interfaces.

Publishes `joint_states` (sensor_msgs/JointState, radians, stamped at read time) at `rate_hz`; follows
`<controller>/commands` (std_msgs/Float64MultiArray, radians in joint order) and
`<trajectory_controller>/joint_trajectory` (trajectory_msgs/JointTrajectory); `~/enable_torque`
(std_srvs/SetBool) switches torque; bus health goes to `diagnostics` (diagnostic_msgs/DiagnosticArray).
`port:=virtual` runs the arm on an in-process virtual servo bus (no hardware).
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

from apprentice.motors import BusError, VirtualServoBus, load_calibration
from apprentice.motors.port import latency_timer_warning
from apprentice.nodes.runtime import run_node
from apprentice.robots import Arm, RobotError, default_calibration_path, load_robot
from apprentice.robots.trajectory import TrajectoryPlayer
from apprentice.robots.virtual_arm import make_virtual_arm


def open_arm(node: Node, prefix: str = "") -> tuple[Arm, VirtualServoBus | None]:
    """Build an Arm from the node's `<prefix>robot_type`, `port`, `robot_id`, `calibration_file` parameters.

    Shared by the driver and teleop nodes. The calibration file is, in order: the parameter, LeRobot's
    default location for (type, id) if it exists, else the calibration the motors already hold.
    """
    p = {
        name: node.get_parameter(prefix + name).value for name in ("robot_type", "port", "robot_id", "calibration_file")
    }
    definition = load_robot(p["robot_type"])
    virtual = None
    port = p["port"]
    if not port:
        raise RobotError(
            f"{node.get_name()}: parameter {prefix}port is empty; give the serial port "
            "(e.g. /dev/ttyACM0) or `virtual` for a simulated bus"
        )
    if port == "virtual":
        motion = node.get_parameter(prefix + "virtual_motion").value
        virtual = make_virtual_arm(definition, motion=motion)
        port = virtual.start()
    calibration_file = p["calibration_file"] or default_calibration_path(definition, p["robot_id"])
    calibration = (
        load_calibration(calibration_file) if p["calibration_file"] or Path(calibration_file).is_file() else None
    )
    if (warning := latency_timer_warning(port)) is not None:
        node.get_logger().warning(warning)
    mrt = float(node.get_parameter(prefix + "max_relative_target").value)
    arm = Arm(
        definition,
        port,
        calibration=calibration,
        max_relative_target=mrt if mrt > 0 else None,
        torque_off_on_error=bool(node.get_parameter("torque_off_on_error").value),
        num_retry=int(node.get_parameter("num_retry").value),
    )
    node.get_logger().info(
        f"{definition.type} on {port}"
        + (" (virtual bus)" if virtual else "")
        + f", calibration: {calibration_file if calibration else 'read from the motors'}"
    )
    return arm, virtual


def declare_arm_parameters(node: Node, prefix: str, robot_type: str) -> None:
    node.declare_parameter(prefix + "robot_type", robot_type)
    node.declare_parameter(prefix + "port", "")
    node.declare_parameter(prefix + "robot_id", "default")
    node.declare_parameter(prefix + "calibration_file", "")
    node.declare_parameter(prefix + "max_relative_target", 0.0)  # radians per command; 0 = no clamp
    node.declare_parameter(prefix + "virtual_motion", "none")  # with port:=virtual: none | sine


def diagnostic_status(node: Node, arm: Arm, level: bytes, message: str, rate_hz: float) -> DiagnosticStatus:
    health = arm.bus.health
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
        declare_arm_parameters(self, "", "so101_follower")
        self.declare_parameter("rate_hz", 100.0)
        self.declare_parameter("controller", "forward_position_controller")
        self.declare_parameter("trajectory_controller", "joint_trajectory_controller")
        self.declare_parameter("torque_off_on_error", True)
        self.declare_parameter("disable_torque_on_shutdown", True)
        self.declare_parameter("num_retry", 3)
        # Fills JointState.velocity in rad/s; the same SYNC_READ carries it (one wider block per tick).
        self.declare_parameter("publish_velocity", True)
        self.arm, self.virtual = open_arm(self)
        try:
            self.arm.connect()
        except BusError:
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
        self._reads += 1
        if self.trajectory is not None:
            now = time.monotonic()
            self.command = self.trajectory.sample(now)
            if self.trajectory.finished(now):
                self.trajectory = None
        if self.command is not None and self.arm.torque_enabled:
            try:
                self.arm.send_positions(self.command)
            except BusError as exc:
                self._report(str(exc))

    def _report(self, message: str) -> None:
        if message != self.error:
            self.get_logger().error(message)
        self.error = message
        self._retry_at = time.monotonic() + 0.5
        self.command, self.trajectory = None, None

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        self.rate = self._reads / max(1e-9, now - self._rate_t0)
        self._reads, self._rate_t0 = 0, now
        if self.error:
            level, message = DiagnosticStatus.ERROR, self.error
        elif self.arm.bus.health.hardware_errors:
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
        return run_node(DriverNode, argv)
    except BusError as exc:  # bad port/robot/calibration: one clear line, not a traceback
        print(f"driver: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
