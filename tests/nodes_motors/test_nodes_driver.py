"""ROS graph tests: the real driver node on a virtual servo bus (real pty, real SDK), real rclpy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from apprentice.motors import MotorCalibration, save_calibration
from apprentice.robots import load_robot

pytestmark = pytest.mark.ros
JOINTS = load_robot("so101_follower").joint_names


def test_driver_publishes_and_follows_commands_and_trajectories(graph) -> None:
    virtual = graph.virtual_arm("so101_follower", tau_s=0.02)
    driver = graph.start_driver(virtual)
    probe = graph.probe()
    assert graph.wait_for(lambda: probe.count.get("joint_states", 0) > 20)
    state = probe.latest["joint_states"]
    assert list(state.name) == JOINTS
    np.testing.assert_allclose(state.position, 0.0, atol=0.002)  # factory calibration: mid = 2047.5
    assert len(state.velocity) == len(JOINTS) and probe.top_speed["joint_states"] < 0.05  # at rest
    assert state.header.stamp.sec > 0

    goal = np.array([0.3, -0.2, 0.1, 0.2, -0.3, 0.1])
    probe.commands.publish(Float64MultiArray(data=goal.tolist()))
    assert graph.wait_for(lambda: np.allclose(probe.positions(), goal, atol=0.005)), probe.positions()
    assert probe.top_speed["joint_states"] > 0.5  # rad/s on the way there (0.3 rad in ~0.1 s)

    trajectory = JointTrajectory(joint_names=["elbow_flex", "shoulder_pan"])  # a subset, any order
    for seconds, positions in ((0.2, [0.5, 0.0]), (0.4, [-0.4, 0.1])):
        trajectory.points.append(
            JointTrajectoryPoint(positions=positions, time_from_start=Duration(sec=0, nanosec=int(seconds * 1e9)))
        )
    probe.trajectories.publish(trajectory)
    final = goal.copy()
    final[[2, 0]] = [-0.4, 0.1]
    assert graph.wait_for(lambda: np.allclose(probe.positions(), final, atol=0.005)), probe.positions()

    # Malformed commands are refused with an error log; the arm holds and the node keeps running.
    probe.commands.publish(Float64MultiArray(data=[0.0, float("nan"), 0.0, 0.0, 0.0, 0.0]))
    probe.commands.publish(Float64MultiArray(data=[0.0, 0.0]))
    bad = JointTrajectory(joint_names=["elbow_flex"], points=[JointTrajectoryPoint(positions=[0.1, 0.2])])
    probe.trajectories.publish(bad)
    count = probe.count["joint_states"]
    assert graph.wait_for(lambda: probe.count["joint_states"] > count + 20)
    np.testing.assert_allclose(probe.positions(), final, atol=0.005)

    client = probe.create_client(SetBool, "driver/enable_torque")
    assert client.wait_for_service(timeout_sec=5.0)
    assert client.call(SetBool.Request(data=False), timeout_sec=5.0).success
    assert all(m.get("Torque_Enable") == 0 for m in virtual.motors)
    assert client.call(SetBool.Request(data=True), timeout_sec=5.0).success
    assert all(m.get("Torque_Enable") == 1 for m in virtual.motors)
    assert graph.wait_for(lambda: any(s.level == DiagnosticStatus.OK for s in probe.diagnostics))
    status = next(s for s in probe.diagnostics if s.level == DiagnosticStatus.OK)
    assert status.hardware_id == virtual.port and "servo bus" in status.name
    assert driver.arm.bus.health.failures == 0
    graph.executor.remove_node(driver)
    driver.close()  # what run_node does on SIGINT/SIGTERM
    assert all(m.get("Torque_Enable") == 0 for m in virtual.motors)


@pytest.mark.parametrize("layouts", [["so_follower"], ["so101_follower"], ["so_follower", "so101_follower"]])
def test_driver_uses_the_lerobot_calibration_file_for_its_id(graph, tmp_path, layouts: list[str]) -> None:
    # lerobot >= 0.4.3's folder (so_follower), lerobot < 0.4.3's (so101_follower) as the fallback, or both:
    # the newest wins. Each file holds another homing offset, so the motors show which one was used.
    offsets = {"so_follower": -300, "so101_follower": 500}
    for folder in layouts:
        path = tmp_path / "no-calibration" / "robots" / folder / "lab_arm.json"
        calibration = {n: MotorCalibration(i + 1, 0, offsets[folder], 1000, 3000) for i, n in enumerate(JOINTS)}
        save_calibration(path, calibration)
    offset = offsets[layouts[0]]
    virtual = graph.virtual_arm("so101_follower")
    graph.start_driver(virtual, robot_id="lab_arm")
    probe = graph.probe()
    assert graph.wait_for(lambda: probe.count.get("joint_states", 0) > 5)
    assert all(m.get("Homing_Offset") == offset and m.get("Max_Position_Limit") == 3000 for m in virtual.motors)
    # shaft at 2048, Present = 2048 - offset, mid of 1000..3000 is 2000: 48 - offset ticks
    np.testing.assert_allclose(probe.positions(), (48 - offset) * 2 * np.pi / 4095, atol=1e-6)


def test_driver_log_names_the_calibration_file_and_the_fallback(tmp_path, monkeypatch) -> None:
    from apprentice.nodes.driver_node import _calibration_source

    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    definition = load_robot("so101_follower")
    new, old = tmp_path / "robots" / "so_follower" / "a.json", tmp_path / "robots" / "so101_follower" / "a.json"
    assert _calibration_source(new, definition, "a") == str(new)
    assert _calibration_source(old, definition, "a") == f"{old} (lerobot < 0.4.3 layout; lerobot >= 0.4.3 reads {new})"
    assert _calibration_source(None, definition, "a") == f"read from the motors (no {new})"


def test_dead_motor_drops_torque_and_is_reported_on_diagnostics(graph) -> None:
    virtual = graph.virtual_arm("koch_follower")
    graph.start_driver(virtual, robot_type="koch_follower", num_retry=1)
    probe = graph.probe()
    assert graph.wait_for(lambda: probe.count.get("joint_states", 0) > 5)
    virtual.fault(4).silent = True
    assert graph.wait_for(lambda: any(s.level == DiagnosticStatus.ERROR for s in probe.diagnostics))
    error = next(s for s in probe.diagnostics if s.level == DiagnosticStatus.ERROR)
    assert "'wrist_flex' (id 4)" in error.message
    assert [m.get("Torque_Enable") for m in virtual.motors] == [0, 0, 0, 1, 0, 0]  # id 4 is unreachable
    count = probe.count["joint_states"]
    time.sleep(0.3)
    assert probe.count["joint_states"] == count  # no stale joint states while the motor is gone
    virtual.fault(4).silent = False
    assert graph.wait_for(lambda: probe.count["joint_states"] > count + 5)


def test_driver_process_runs_from_the_command_line_and_exits_cleanly(ros_env: dict[str, str], graph) -> None:
    ros_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), ros_env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apprentice.nodes.driver_node",
            "--ros-args",
            "-p",
            "port:=virtual",
            "-p",
            "robot_type:=koch_follower",
            "-p",
            "rate_hz:=50.0",
        ],
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        probe = graph.probe()
        assert graph.wait_for(lambda: probe.count.get("joint_states", 0) > 10, timeout=20.0)
        assert list(probe.latest["joint_states"].name) == JOINTS
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert "koch_follower on /dev/pts/" in output


def test_bad_port_gives_one_clear_line(ros_env: dict[str, str]) -> None:
    ros_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), ros_env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "apprentice.nodes.driver_node", "--ros-args", "-p", "port:=/dev/nonexistent"],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot open servo port /dev/nonexistent" in result.stderr
    assert "Traceback" not in result.stderr
