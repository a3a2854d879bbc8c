"""SIGKILL of the real recorder node mid-episode: completed episodes survive, restart salvages the cut bag."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

JOINTS = ["a", "b", "c"]
CONTRACT = f"""
fps: 30
robot_type: test_arm
task: kill test
observations:
  - {{key: observation.state, topic: joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
  - {{key: observation.images.top, topic: cameras/top/image_raw, type: sensor_msgs/msg/Image,
     shape: [48, 64, 3]}}
action: {{key: action, topic: joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
"""


def _journal(bags: Path) -> list[dict]:
    path = bags / "journal.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


@pytest.mark.ros
def test_sigkill_recorder_node_then_resume(tmp_path: Path, ros_env: dict[str, str]) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from apprentice.dataset import LeRobotDataset
    from apprentice.dataset.verify import verify

    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT)
    root, bags = tmp_path / "ds", tmp_path / "ds_bags"
    camera = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apprentice.nodes.camera_node",
            "--ros-args",
            "-p",
            "width:=64",
            "-p",
            "height:=48",
            "-p",
            "name:=top",
        ],
        env=ros_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    args = [
        sys.executable,
        "-m",
        "apprentice.nodes.recorder_node",
        "--contract",
        str(contract),
        "--dataset.root",
        str(root),
        "--dataset.vcodec",
        "h264",
    ]
    log1 = (tmp_path / "recorder1.log").open("w")
    recorder = subprocess.Popen(
        [*args, "--dataset.num_episodes", "20", "--dataset.episode_time_s", "1.0", "--dataset.reset_time_s", "0.1"],
        env=ros_env,
        stdout=log1,
        stderr=subprocess.STDOUT,
    )
    rclpy.init()
    node = rclpy.create_node("kill_test")
    pub = node.create_publisher(JointState, "joint_states", 10)
    node.create_timer(0.01, lambda: pub.publish(JointState(header=_now(node), name=JOINTS, position=[1.0, 2.0, 3.0])))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        deadline = time.monotonic() + 90
        while True:
            converted = [e for e in _journal(bags) if e["event"] == "converted"]
            recording = sorted(bags.glob("episode_*/*.mcap"))
            if (
                len(converted) >= 2
                and recording
                and not (recording[-1].parent / "metadata.yaml").exists()
                and recording[-1].stat().st_size > 8_000
            ):
                break
            assert recorder.poll() is None, (tmp_path / "recorder1.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "recorder1.log").read_text()
            time.sleep(0.02)
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(10)
        cut_bags = [p.name for p in bags.glob("episode_*") if not (p / "metadata.yaml").exists()]
        assert len(cut_bags) == 1, f"expected one interrupted bag, found {cut_bags}"
        cut = cut_bags[0]
        saved_before = len({e["bag"] for e in _journal(bags) if e["event"] == "converted"})

        # restart: services only, finishes at once on SIGINT
        log2 = (tmp_path / "recorder2.log").open("w")
        again = subprocess.Popen(
            [*args, "--resume", "--services_only"], env=ros_env, stdout=log2, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not any(e["bag"] == cut and e["event"] == "salvaged" for e in _journal(bags)):
            assert again.poll() is None, (tmp_path / "recorder2.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "recorder2.log").read_text()
            time.sleep(0.1)
        time.sleep(1.0)
        again.send_signal(signal.SIGINT)
        assert again.wait(60) == 0, (tmp_path / "recorder2.log").read_text()
    finally:
        for p in (recorder, camera):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(20)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    text = (tmp_path / "recorder2.log").read_text()
    assert f"{cut} was interrupted" in text and "not added to the dataset" in text
    assert (bags / cut / "metadata.yaml").is_file() and (bags / f"{cut}.interrupted").is_dir()
    assert verify(root)["episodes"] >= saved_before >= 2
    ds = LeRobotDataset(root)
    assert (ds.column("observation.state") == np.float32([1, 2, 3])).all()


def _now(node):
    from std_msgs.msg import Header

    return Header(stamp=node.get_clock().now().to_msg())
