"""The sim node and scripted teleop on a real rclpy graph: topics, /clock, reset, command following."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")


def _start(module: str, params: dict[str, object], env: dict[str, str]) -> subprocess.Popen:
    args = [sys.executable, "-m", module, "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def _assert_clean_exit(proc: subprocess.Popen, log: str) -> None:
    # run_node turns a signal into exit 0 wherever it lands (tests/foundation/test_node_runtime.py).
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log


class Probe:
    """A test-side node that keeps every message of the sim's topics."""

    def __init__(self) -> None:
        from geometry_msgs.msg import PointStamped
        from rclpy.qos import qos_profile_sensor_data
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Bool, Float64MultiArray
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        self.node = rclpy.create_node("sim_probe")
        self.msgs: dict[str, list] = {k: [] for k in ("joints", "image", "target", "success", "clock", "leader")}
        sub = self.node.create_subscription
        sub(JointState, "joint_states", self.msgs["joints"].append, 50)
        sub(Image, "cameras/top/image_raw", self.msgs["image"].append, qos_profile_sensor_data)
        sub(PointStamped, "sim/target", self.msgs["target"].append, 50)
        sub(Bool, "sim/is_success", self.msgs["success"].append, 50)
        sub(Clock, "/clock", self.msgs["clock"].append, 50)
        sub(JointState, "leader/joint_states", self.msgs["leader"].append, 50)
        self.command_pub = self.node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        self.trajectory_pub = self.node.create_publisher(
            JointTrajectory, "joint_trajectory_controller/joint_trajectory", 10
        )
        self.reset_client = self.node.create_client(Trigger, "sim/reset")

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if done():
                return
        counts = {k: len(v) for k, v in self.msgs.items()}
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; messages so far: {counts}")

    def reset(self) -> str:
        from std_srvs.srv import Trigger

        assert self.reset_client.wait_for_service(timeout_sec=10), "sim/reset service never appeared"
        future = self.reset_client.call_async(Trigger.Request())
        self.spin_until(future.done, 10, "sim/reset response")
        assert future.result().success
        return future.result().message


@pytest.fixture
def probe() -> Iterator[Probe]:
    rclpy.init()
    p = Probe()
    yield p
    p.node.destroy_node()
    rclpy.try_shutdown()


def test_scripted_teleop_drives_sim_to_success_on_sim_time(probe: Probe, ros_env: dict[str, str]) -> None:
    sim = _start("apprentice.nodes.sim_node", {"publish_clock": True, "real_time_factor": 2.0}, ros_env)
    teleop = _start("apprentice.nodes.scripted_teleop_node", {"use_sim_time": True}, ros_env)
    try:
        probe.spin_until(
            lambda: any(m.data for m in probe.msgs["success"]) and probe.msgs["leader"] and probe.msgs["clock"],
            60,
            "success, leader/joint_states and /clock",
        )
        joints = probe.msgs["joints"][-1]
        assert list(joints.name) == [
            "shoulder_pan",
            "shoulder_lift",
            "elbow_flex",
            "wrist_flex",
            "wrist_roll",
            "gripper",
        ]
        image = probe.msgs["image"][-1]
        assert (image.height, image.width, image.encoding, image.step) == (96, 128, "rgb8", 384)
        assert len(image.data) == 96 * 128 * 3
        # Sim time: /clock advances by 1/30 s per step and state stamps are sim time, not wall time.
        clocks = [c.clock.sec + c.clock.nanosec * 1e-9 for c in probe.msgs["clock"]]
        assert clocks == sorted(clocks) and clocks[-1] < 1e6
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in probe.msgs["joints"]]
        assert all(abs(t * 30 - round(t * 30)) < 1e-6 for t in stamps), "state stamps off the 1/30 s sim grid"
        assert max(stamps) <= clocks[-1] + 1 / 30 + 1e-9, "state stamped ahead of /clock"
        first_target = probe.msgs["target"][-1].point

        message = probe.reset()
        assert "seed 1" in message

        def new_target() -> bool:
            point = probe.msgs["target"][-1].point
            return (point.x, point.y) != (first_target.x, first_target.y)

        probe.spin_until(new_target, 10, "a new sim/target after sim/reset")
        probe.msgs["success"].clear()
        probe.spin_until(lambda: len(probe.msgs["success"]) > 3, 10, "sim/is_success after reset")
        assert not probe.msgs["success"][1].data, "a reset episode must not start successful"
        probe.spin_until(lambda: any(m.data for m in probe.msgs["success"]), 60, "success in episode 2")
    finally:
        teleop_log = _stop(teleop)
        sim_log = _stop(sim)
    _assert_clean_exit(sim, sim_log)
    _assert_clean_exit(teleop, teleop_log)


def test_sim_node_follows_position_commands_and_trajectories(probe: Probe, ros_env: dict[str, str]) -> None:
    from builtin_interfaces.msg import Duration
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    sim = _start("apprentice.nodes.sim_node", {"render": False, "real_time_factor": 3.0}, ros_env)
    try:
        probe.spin_until(lambda: len(probe.msgs["joints"]) > 0, 30, "joint_states")
        assert not probe.msgs["image"], "render:=false must not publish images"
        goal = np.array([0.4, -0.2, 1.5, 0.5, 0.3, 0.2])

        def near(q: np.ndarray) -> bool:
            return bool(probe.msgs["joints"]) and np.allclose(probe.msgs["joints"][-1].position, q, atol=0.03)

        def command() -> bool:
            probe.command_pub.publish(Float64MultiArray(data=goal.tolist()))
            return near(goal)

        probe.spin_until(command, 30, f"joint_states to reach the commanded {goal}")
        # A wrong-length command is refused and the arm holds its last target.
        probe.command_pub.publish(Float64MultiArray(data=[0.0, 0.0]))
        probe.msgs["joints"].clear()
        probe.spin_until(lambda: len(probe.msgs["joints"]) > 20, 10, "joint_states after a bad command")
        assert near(goal)

        trajectory = JointTrajectory(joint_names=["elbow_flex", "shoulder_pan"])
        trajectory.points = [
            JointTrajectoryPoint(positions=[1.0, 0.0], time_from_start=Duration(sec=0, nanosec=500_000_000)),
            JointTrajectoryPoint(positions=[1.2, -0.3], time_from_start=Duration(sec=1, nanosec=0)),
        ]
        probe.trajectory_pub.publish(trajectory)
        final = goal.copy()
        final[[2, 0]] = [1.2, -0.3]
        probe.spin_until(lambda: near(final), 30, f"the trajectory's last point {final}")
    finally:
        log = _stop(sim)
    _assert_clean_exit(sim, log)
