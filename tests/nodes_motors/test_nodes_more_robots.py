"""ROS graph tests for the new robots: LeKiwi's driver (arm + cmd_vel/odom), a two-arm SO-101 driver
and teleop, an OMX driver, and the terminal base-keys node on a real pty — real rclpy, virtual buses."""

from __future__ import annotations

import math
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray

from apprentice.contract import load_contract
from apprentice.nodes.teleop_node import TeleopNode
from apprentice.robots import RobotError, load_definition
from apprentice.robots.virtual_arm import make_virtual_robot

pytestmark = pytest.mark.ros
CONTRACTS = Path(__file__).parents[2] / "config" / "contracts"


def listen(probe, msg_type, topic: str) -> list:
    received: list = []
    probe.create_subscription(msg_type, topic, received.append, 50)
    return received


def test_lekiwi_driver_follows_cmd_vel_publishes_odom_and_stops_on_silence(graph) -> None:
    virtual = graph.virtual_arm("lekiwi", tau_s=0.02)
    graph.start_driver(virtual, robot_type="lekiwi", rate_hz=50.0, cmd_vel_timeout_s=0.3)
    probe = graph.probe()
    odom = listen(probe, Odometry, "odom")
    cmd_vel = probe.create_publisher(Twist, "cmd_vel", 10)
    assert graph.wait_for(lambda: probe.count.get("joint_states", 0) > 5 and len(odom) > 5)
    assert list(probe.latest["joint_states"].name) == load_definition("lekiwi").joint_names
    assert (odom[-1].header.frame_id, odom[-1].child_frame_id) == ("odom", "base_link")
    assert [m.get("Operating_Mode") for m in virtual.motors] == [0] * 6 + [1] * 3  # arm position, wheels speed

    forward = Twist()
    forward.linear.x = 0.1
    deadline = time.monotonic() + 10.0
    while odom[-1].pose.pose.position.x < 0.05 and time.monotonic() < deadline:
        cmd_vel.publish(forward)  # a teleop publishes continuously; the watchdog needs that
        time.sleep(0.05)
    moving = odom[-1]
    assert moving.twist.twist.linear.x == pytest.approx(0.1, abs=0.005)
    assert 0.05 <= moving.pose.pose.position.x < 0.07 and abs(moving.pose.pose.position.y) < 0.002
    assert abs(moving.twist.twist.linear.y) < 0.002 and abs(moving.twist.twist.angular.z) < 0.01
    # The lekiwi contract records the measured base velocity from this very message.
    base_velocity = load_contract(CONTRACTS / "lekiwi.yaml").spec("observation.base_velocity")
    np.testing.assert_allclose(base_velocity.decode(moving), [0.1, 0.0, 0.0], atol=0.01)
    # Silence: within the 0.3 s watchdog the wheels are commanded to zero and the base stops.
    assert graph.wait_for(lambda: abs(odom[-1].twist.twist.linear.x) < 1e-6, timeout=2.0)
    stopped_at = odom[-1].pose.pose.position.x
    assert all(m.get("Goal_Velocity") == 0 for m in virtual.motors[6:])
    time.sleep(0.2)
    assert odom[-1].pose.pose.position.x == pytest.approx(stopped_at, abs=1e-6)

    probe.commands.publish(Float64MultiArray(data=[0.2, 0.0, 0.0, 0.0, 0.0, 0.0]))  # the arm, meanwhile
    assert graph.wait_for(lambda: abs(probe.positions()[0] - 0.2) < 0.01)
    spin = Twist()
    spin.angular.z = float("nan")
    cmd_vel.publish(spin)  # refused: the base stays still
    time.sleep(0.2)
    assert abs(odom[-1].twist.twist.angular.z) < 1e-6


def test_bimanual_driver_and_teleop_drive_both_arms(graph) -> None:
    leaders = make_virtual_robot(load_definition("bi_so101_leader"))
    followers = make_virtual_robot(load_definition("bi_so101_follower"))
    leader_port, follower_port = leaders.start(), followers.start()
    graph.buses += leaders.buses + followers.buses
    driver = graph.start_driver(followers.buses[0], robot_type="bi_so101_follower", port=follower_port)
    teleop = TeleopNode(
        context=graph.context,
        parameter_overrides=[
            Parameter("leader_robot_type", value="bi_so101_leader"),
            Parameter("leader_port", value=leader_port),
        ],
    )
    graph.add(teleop)
    probe = graph.probe()
    names = load_definition("bi_so101_follower").joint_names
    assert graph.wait_for(lambda: probe.count.get("joint_states", 0) > 5 and probe.count.get("leader/joint_states", 0))
    assert list(probe.latest["joint_states"].name) == names and len(names) == 12
    assert list(probe.latest["leader/joint_states"].name) == load_definition("bi_so101_leader").joint_names
    leaders.buses[1].motor(3).set_hand_position(2600)  # the operator moves the right leader's elbow
    expected = (2600 - 2047.5) * 2 * math.pi / 4095
    assert graph.wait_for(lambda: abs(probe.positions()[8] - expected) < 0.01), probe.positions()
    np.testing.assert_allclose(probe.positions()[:8], 0.0, atol=0.01)  # nothing else moved
    assert driver.arm.port == follower_port


def test_omx_driver_reads_and_writes_joints(graph) -> None:
    virtual = graph.virtual_arm("omx_follower", tau_s=0.02)
    graph.start_driver(virtual, robot_type="omx_follower")
    probe = graph.probe()
    assert graph.wait_for(lambda: probe.count.get("joint_states", 0) > 5)
    goal = [0.2, -0.3, 0.4, 0.1, -0.1, 0.05]
    probe.commands.publish(Float64MultiArray(data=goal))
    assert graph.wait_for(lambda: np.allclose(probe.positions(), goal, atol=0.005)), probe.positions()
    assert virtual.motor(16).get("Operating_Mode") == 5


def test_base_keys_node_reads_the_terminal_and_publishes_cmd_vel(ros_env: dict[str, str], graph) -> None:
    ros_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), ros_env.get("PYTHONPATH", "")])
    master, slave = pty.openpty()  # the node's stdin is a real terminal
    process = subprocess.Popen(
        [sys.executable, "-m", "apprentice.nodes.base_teleop_node", "--ros-args", "-p", "hold_s:=0.3"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=ros_env,
        text=True,
    )
    os.close(slave)
    try:
        probe = graph.probe()
        twists = listen(probe, Twist, "cmd_vel")
        assert graph.wait_for(lambda: len(twists) > 3, timeout=20.0)
        assert twists[-1].linear.x == 0.0
        os.write(master, b"r")  # medium speed
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:  # a held key: the terminal's auto-repeat
            os.write(master, b"wz")
            time.sleep(0.03)
        last = twists[-1]
        assert (last.linear.x, last.linear.y) == pytest.approx((0.2, 0.0))
        assert last.angular.z == pytest.approx(math.radians(60))
        assert graph.wait_for(lambda: twists[-1].linear.x == 0.0 and twists[-1].angular.z == 0.0, timeout=2.0)
    finally:
        process.send_signal(2)
        output, _ = process.communicate(timeout=10)
        os.close(master)
    assert process.returncode == 0, output


def test_bimanual_driver_names_a_wrong_number_of_calibration_files(graph) -> None:
    followers = make_virtual_robot(load_definition("bi_so101_follower"))
    port = followers.start()
    graph.buses += followers.buses
    with pytest.raises(RobotError, match="calibration_file needs 2 comma-separated file"):
        graph.start_driver(followers.buses[0], robot_type="bi_so101_follower", port=port, calibration_file="a.json")
    with pytest.raises(RobotError, match="needs two ports"):
        graph.start_driver(followers.buses[0], robot_type="bi_so101_follower", port=port.split(",")[0])
