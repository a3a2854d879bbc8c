"""The sim node hosting the real gym-pusht env: its 96x96 image on the camera topic, the pusher following commands."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("gym_pusht")


def test_sim_node_serves_pusht_behind_the_robot_topics(ros_env: dict[str, str]) -> None:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray

    args = [sys.executable, "-m", "apprentice.nodes.sim_node", "--ros-args", "-p", "task:=pusht",
            "-p", "real_time_factor:=3.0"]
    sim = subprocess.Popen(args, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("pusht_probe")
    joints: list[JointState] = []
    images: list[Image] = []
    node.create_subscription(JointState, "joint_states", joints.append, 50)
    node.create_subscription(Image, "cameras/top/image_raw", images.append, qos_profile_sensor_data)
    command = node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
    goal = [250.0, 120.0]

    def reached() -> bool:
        command.publish(Float64MultiArray(data=goal))
        return bool(joints) and np.allclose(joints[-1].position, goal, atol=3.0)

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (images and reached()):
            rclpy.spin_once(node, timeout_sec=0.05)
        assert images and reached(), f"no image or pusher not at {goal}: {len(images)} images, {len(joints)} states"
        assert (images[-1].height, images[-1].width, images[-1].encoding) == (96, 96, "rgb8")
        assert list(joints[-1].name) == ["motor_0", "motor_1"]
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        sim.send_signal(signal.SIGINT)
        try:
            log, _ = sim.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            log, _ = sim.communicate()
    assert sim.returncode == 0 and "Traceback" not in log, log
