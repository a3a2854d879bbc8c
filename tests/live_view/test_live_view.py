"""LiveView: a Foxglove WebSocket server on 127.0.0.1 that a real client subscribes to (no ROS graph)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from foxglove_ws_client import collect
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from apprentice.contract import contract_from_dict
from apprentice.live_view import LiveView, LiveViewError

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
H, W = 24, 32


def contract():
    return contract_from_dict({
        "fps": 30, "robot_type": "test_arm",
        "observations": [
            {"key": "observation.state", "topic": "joint_states", "type": "sensor_msgs/msg/JointState",
             "names": JOINTS},
            {"key": "observation.images.top", "topic": "cameras/top/image_raw", "type": "sensor_msgs/msg/Image",
             "shape": [H, W, 3]}],
        "action": {"key": "action", "topic": "leader/joint_states", "type": "sensor_msgs/msg/JointState",
                   "names": JOINTS, "units": "degrees"},
    })


def image_msg(i: int) -> Image:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[: H // 2, :, 2] = i % 256, 200
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    msg = Image(height=H, width=W, encoding="bgr8", step=W * 3, data=bgr.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 0
    return msg


def joints_msg(i: int) -> JointState:
    msg = JointState(name=list(reversed(JOINTS)), position=[float(i + k) for k in range(6)])
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 500
    return msg


def test_a_client_receives_images_joint_states_actions_and_commands() -> None:
    with LiveView(contract(), port=0, max_image_hz=0) as view:
        assert set(view.topics) == {"joint_states", "cameras/top/image_raw", "leader/joint_states",
                                    "forward_position_controller/commands"}
        stop = threading.Event()

        def publish() -> None:
            i = 0
            while not stop.wait(0.02):
                view.log("observation.images.top", image_msg(i))
                view.log("observation.state", joints_msg(i))
                view.log("action", joints_msg(i))
                view.log("command", Float64MultiArray(data=[0.5] * 6))
                i += 1

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        try:
            got = collect(view.port, {"observation.images.top": 2, "observation.state": 2, "action": 1,
                                      "command": 1})
        finally:
            stop.set()
            thread.join()
    log_time, image = got["observation.images.top"][-1]
    i = image.timestamp.seconds - 100
    assert (image.width, image.height, image.encoding, image.step) == (W, H, "rgb8", W * 3)
    assert log_time == image.timestamp.seconds * 10**9
    pixels = np.frombuffer(image.data, np.uint8).reshape(H, W, 3)
    expected = np.zeros((H, W, 3), np.uint8)
    expected[..., 0], expected[: H // 2, :, 2] = i % 256, 200
    np.testing.assert_array_equal(pixels, expected)  # bgr8 on the topic, rgb8 in the view
    log_time, state = got["observation.state"][-1]
    j = state["timestamp"]["sec"] - 100
    assert log_time == state["timestamp"]["sec"] * 10**9 + 500
    # contract order, not the message's (reversed) order
    assert [state[n] for n in JOINTS] == [float(j + 5 - k) for k in range(6)]
    _, action = got["action"][-1]
    j = action["timestamp"]["sec"] - 100
    assert action["shoulder_pan"] == pytest.approx(np.degrees(j + 5))  # dataset units (degrees), as recorded
    assert got["command"][-1][1]["gripper"] == pytest.approx(np.degrees(0.5))


def test_images_are_rate_limited_and_bad_messages_are_named() -> None:
    with LiveView(contract(), port=0, max_image_hz=2) as view:
        sent = [view.log("observation.images.top", image_msg(0)) for _ in range(3)]
        assert sent == [True, False, False] and view.log("observation.images.top", image_msg(1))
        bad = JointState(name=JOINTS[:3], position=[0.0] * 3)
        with pytest.raises(LiveViewError, match=r"topic 'joint_states' \(observation.state\): joints"):
            view.log("observation.state", bad)
        small = Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12))
        with pytest.raises(LiveViewError, match="image is"):
            view.log("observation.images.top", small)
        with pytest.raises(LiveViewError, match=f"cannot listen on 127.0.0.1:{view.port}"):
            LiveView(contract(), port=view.port)
