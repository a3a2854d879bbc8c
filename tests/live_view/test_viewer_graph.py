"""ROS graph: the viewer node (its own process) republishes a live graph's image, joint states, action and
command to Foxglove; a WebSocket client subscribes and gets exactly what was published, in dataset units."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from foxglove_ws_client import collect

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
H, W = 48, 64
CONTRACT = f"""
fps: 30
robot_type: test_arm
observations:
  - {{key: observation.state, topic: joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
  - {{key: observation.images.top, topic: cameras/top/image_raw, type: sensor_msgs/msg/Image, shape: [{H}, {W}, 3]}}
action: {{key: action, topic: leader/joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
command: {{topic: forward_position_controller/commands, type: std_msgs/msg/Float64MultiArray}}
"""


def _wait_for_port(proc: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(r"at ws://127\.0\.0\.1:(\d+)", log.read_text())
        if match:
            return int(match[1])
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    pytest.fail(f"viewer node did not report its port: {log.read_text()}")


@pytest.mark.ros
def test_viewer_node_serves_the_graph_to_a_foxglove_client(tmp_path: Path, ros_env: dict[str, str]) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray

    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT)
    log = tmp_path / "viewer.log"
    viewer = subprocess.Popen([sys.executable, "-m", "apprentice.nodes.viewer_node", "--ros-args", "-p",
                               f"contract:={contract}", "-p", "port:=0", "-p", "max_image_hz:=0.0"],
                              env=ros_env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("viewer_graph_test")
    image_pub = node.create_publisher(Image, "cameras/top/image_raw", 10)
    state_pub = node.create_publisher(JointState, "joint_states", 10)
    action_pub = node.create_publisher(JointState, "leader/joint_states", 10)
    command_pub = node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
    counter = [0]

    def publish() -> None:
        i = counter[0] = counter[0] + 1
        stamp = rclpy.time.Time(seconds=1000 + i).to_msg()  # the frame number, readable back from the stamp
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 1], rgb[:, : W // 2, 0] = i % 256, 255
        image = Image(height=H, width=W, encoding="rgb8", step=W * 3, data=rgb.tobytes())
        image.header.stamp = stamp
        state = JointState(name=JOINTS, position=[i * 0.01 + k for k in range(6)])
        state.header.stamp = stamp
        action = JointState(name=list(reversed(JOINTS)), position=[-(i * 0.01 + k) for k in range(6)])
        action.header.stamp = stamp
        image_pub.publish(image)
        state_pub.publish(state)
        action_pub.publish(action)
        command_pub.publish(Float64MultiArray(data=[0.25 * k for k in range(6)]))

    node.create_timer(0.05, publish)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        port = _wait_for_port(viewer, log)
        got = collect(port, {"observation.images.top": 2, "observation.state": 2, "action": 2, "command": 1},
                      timeout_s=60)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        viewer.send_signal(signal.SIGINT)
        try:
            code = viewer.wait(30)
        except subprocess.TimeoutExpired:
            viewer.kill()
            raise
    assert code == 0, log.read_text()
    _, image = got["observation.images.top"][-1]
    i = image.timestamp.seconds - 1000
    pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
    assert (image.width, image.height, image.encoding) == (W, H, "rgb8")
    assert (pixels[..., 1] == i % 256).all()
    assert (pixels[:, : W // 2, 0] == 255).all() and not pixels[:, W // 2 :, 0].any()
    _, state = got["observation.state"][-1]
    i = state["timestamp"]["sec"] - 1000
    assert [state[n] for n in JOINTS] == pytest.approx([i * 0.01 + k for k in range(6)], abs=1e-6)
    _, action = got["action"][-1]
    i = action["timestamp"]["sec"] - 1000
    # published in reversed joint order; the view shows the contract's order and values
    assert [action[n] for n in JOINTS] == pytest.approx([-(i * 0.01 + 5 - k) for k in range(6)], abs=1e-6)
    assert [got["command"][-1][1][n] for n in JOINTS] == pytest.approx([0.25 * k for k in range(6)])


def test_view_cli_help_lists_its_parameters_without_ros() -> None:
    out = subprocess.run([sys.executable, "-m", "apprentice.nodes.viewer_node", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and all(f in out.stdout for f in ("--contract", "--port", "--max_image_hz"))
