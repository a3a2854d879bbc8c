"""The sim node hosting gym-aloha's transfer-cube behind the robot topics, on a real rclpy graph."""

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
pytest.importorskip("gym_aloha")

ARM = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
ALOHA_JOINTS = [f"{side}_{j}" for side in ("left", "right") for j in ARM]


class Probe:
    """A test-side node keeping the sim's joint_states, images and success flags; publishes commands."""

    def __init__(self) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Bool, Float64MultiArray

        self.node = rclpy.create_node("aloha_probe")
        self.msgs: dict[str, list] = {"joints": [], "image": [], "success": []}
        self.node.create_subscription(JointState, "joint_states", self.msgs["joints"].append, 50)
        self.node.create_subscription(
            Image, "cameras/top/image_raw", self.msgs["image"].append, qos_profile_sensor_data
        )
        self.node.create_subscription(Bool, "sim/is_success", self.msgs["success"].append, 50)
        self.command_pub = self.node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if done():
                return
        counts = {k: len(v) for k, v in self.msgs.items()}
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; messages so far: {counts}")


@pytest.fixture
def probe() -> Iterator[Probe]:
    rclpy.init()
    p = Probe()
    yield p
    p.node.destroy_node()
    rclpy.try_shutdown()


def _start(params: dict[str, object], env: dict[str, str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "apprentice.nodes.sim_node", "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_sim_node_hosts_gym_aloha(probe: Probe, ros_env: dict[str, str]) -> None:
    from std_msgs.msg import Float64MultiArray

    params = {"task": "AlohaTransferCube-v0", "image_height": 48, "image_width": 64, "publish_clock": True}
    sim = _start(params, ros_env)
    try:
        probe.spin_until(lambda: probe.msgs["joints"] and probe.msgs["image"], 90, "joint_states and an image")
        joints = probe.msgs["joints"][-1]
        assert list(joints.name) == ALOHA_JOINTS
        assert len(joints.position) == len(joints.velocity) == 14
        # gym-aloha's start pose: START_ARM_POSE, grippers nearly closed (normalized ~0.1)
        np.testing.assert_allclose(joints.position[1:3], [-0.96, 1.16], atol=0.02)
        image = probe.msgs["image"][-1]
        assert (image.height, image.width, image.encoding, image.step) == (48, 64, "rgb8", 192)
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(48, 64, 3)
        assert pixels.std() > 5, "the camera image is blank"
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in probe.msgs["joints"]]
        assert all(abs(t * 50 - round(t * 50)) < 1e-6 for t in stamps), "stamps off the 1/50 s sim grid"

        goal = np.asarray(joints.position, dtype=np.float64).copy()
        goal[7] = 0.4  # right waist
        goal[13] = 1.0  # right gripper open

        def reached() -> bool:
            probe.command_pub.publish(Float64MultiArray(data=goal.tolist()))
            last = probe.msgs["joints"][-1].position
            return abs(last[7] - 0.4) < 0.03 and last[13] > 0.8

        probe.spin_until(reached, 90, f"the right arm to follow the command {goal.round(2).tolist()}")
        assert not any(m.data for m in probe.msgs["success"]), "a waist turn must not transfer the cube"
    finally:
        log = _stop(sim)
    assert sim.returncode == 0 and "Traceback" not in log, log
