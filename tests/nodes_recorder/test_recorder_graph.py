"""ROS graph: camera node + a JointState publisher + recorder node record 3 episodes through the services;
the dataset verifies and its values are exactly what was published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
CONTRACT = f"""
fps: 30
robot_type: test_arm
task: graph test
max_drop_ratio: 0.3
observations:
  - {{key: observation.state, topic: joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
  - {{key: observation.images.top, topic: cameras/top/image_raw, type: sensor_msgs/msg/Image,
     shape: [48, 64, 3]}}
action: {{key: action, topic: leader/joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
"""


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.ros
def test_record_three_episodes_through_services(tmp_path: Path, ros_env: dict[str, str]) -> None:
    import rclpy
    from apprentice.msg import EpisodeStatus
    from apprentice.srv import StartEpisode
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from apprentice.dataset import LeRobotDataset
    from apprentice.dataset.verify import verify

    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT)
    root = tmp_path / "ds"
    camera = _start(
        [
            "-m",
            "apprentice.nodes.camera_node",
            "--ros-args",
            "-p",
            "width:=64",
            "-p",
            "height:=48",
            "-p",
            "fps:=30.0",
            "-p",
            "name:=top",
            "-p",
            "report_period_s:=1.0",
        ],
        ros_env,
        tmp_path / "camera.log",
    )
    recorder = _start(
        [
            "-m",
            "apprentice.nodes.recorder_node",
            "--contract",
            str(contract),
            "--dataset.root",
            str(root),
            "--dataset.vcodec",
            "h264",
            "--services_only",
            "--dataset.episode_time_s",
            "0",
        ],
        ros_env,
        tmp_path / "recorder.log",
    )
    rclpy.init()
    node = rclpy.create_node("graph_test")
    published: list[np.ndarray] = []
    statuses: list[EpisodeStatus] = []
    node.create_subscription(
        EpisodeStatus,
        "recorder/status",
        statuses.append,
        QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL),
    )
    diagnostics: list = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    pub = node.create_publisher(JointState, "joint_states", 10)
    leader = node.create_publisher(JointState, "leader/joint_states", 10)
    counter = [0]

    def publish() -> None:
        i = counter[0]
        counter[0] += 1
        pos = np.round(np.arange(6) * 0.1 + i * 0.001, 6)
        msg = JointState(name=JOINTS, position=pos.tolist())
        msg.header.stamp = node.get_clock().now().to_msg()
        lead = JointState(name=list(reversed(JOINTS)), position=(pos + 1.0)[::-1].tolist())
        lead.header.stamp = msg.header.stamp
        pub.publish(msg)
        leader.publish(lead)
        published.append(pos)

    node.create_timer(0.01, publish)  # 100 Hz
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        start = node.create_client(StartEpisode, "recorder/start_episode")
        stop = node.create_client(Trigger, "recorder/stop_episode")
        deadline = time.monotonic() + 60
        while not start.wait_for_service(timeout_sec=0.2):
            assert recorder.poll() is None and time.monotonic() < deadline, (tmp_path / "recorder.log").read_text()
        assert stop.wait_for_service(timeout_sec=10)
        # the recorder subscribes once it sees each topic's publisher (to match its QoS): wait for that
        topics = ("joint_states", "leader/joint_states", "cameras/top/image_raw")
        while not all(node.count_subscribers(t) >= 1 for t in topics):
            assert recorder.poll() is None and time.monotonic() < deadline, (tmp_path / "recorder.log").read_text()
            time.sleep(0.1)
        time.sleep(0.5)
        for episode in range(3):
            result = start.call(StartEpisode.Request(task=f"task {episode % 2}"), timeout_sec=10)
            assert result is not None and result.success, result
            assert result.episode_index == episode
            time.sleep(1.2)
            stopped = stop.call(Trigger.Request(), timeout_sec=10)
            assert stopped is not None and stopped.success, stopped
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (statuses and statuses[-1].episodes_saved == 3):
            time.sleep(0.1)
        assert statuses and statuses[-1].episodes_saved == 3, (tmp_path / "recorder.log").read_text()
    finally:
        _stop(recorder)
        _stop(camera)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    assert recorder.returncode == 0, (tmp_path / "recorder.log").read_text()

    summary = verify(root)
    assert summary["episodes"] == 3
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and ds.meta.tasks == ["task 0", "task 1"]
    for ep in ds.meta.episodes:
        assert 20 <= ep["length"] <= 90  # ~1.2 s at 30 fps, plus service-call latency on a loaded machine
    state, action = ds.column("observation.state"), ds.column("action")
    sent = np.stack(published).astype(np.float32)
    # every recorded state is one of the published vectors, in publishing order within each episode
    rows = [int(np.flatnonzero((sent == s).all(axis=1))[0]) for s in state]
    episode = ds.column("episode_index")
    for e in range(3):
        idx = np.asarray(rows)[episode == e]
        assert (np.diff(idx) >= 0).all()  # a repeat only when the 100 Hz timer stalled (within max_age)
        assert 2 <= np.median(np.diff(idx)) <= 5  # 100 Hz source sampled at 30 fps
    # the leader (joints reversed, +1) is aligned by the same header stamps: exactly the same row
    np.testing.assert_array_equal(action, (np.stack(published)[rows] + 1.0).astype(np.float32))
    frames = ds.episode_frames(0, "observation.images.top")
    assert frames.shape[1:] == (48, 64, 3) and frames.std() > 10  # real colour bars, not blank
    assert os.path.isdir(tmp_path / "ds_bags" / "episode_000002")
    # the camera reports its frame counts on /diagnostics
    camera_status = [st for d in diagnostics for st in d.status if st.name.endswith("cameras/top/image_raw")]
    assert camera_status and int({v.key: v.value for v in camera_status[-1].values}["frames"]) > 60
