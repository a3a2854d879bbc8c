"""complementary_info.is_intervention without ROS: a std_msgs/Bool topic -> bag -> dataset column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from recorder_bagmaker import JOINTS, TS, cdr, contract_file, float_array, frame_image, image, joint_state

from apprentice.bag.recording import RecordConfig, Recorder
from apprentice.contract import load_contract
from apprentice.dataset import LeRobotDataset

CONTRACT = f"""
fps: 30
robot_type: test_arm
task: dagger test
max_drop_ratio: 0.1
observations:
  - {{key: observation.state, topic: joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
  - {{key: observation.images.top, topic: cameras/top/image_raw, type: sensor_msgs/msg/Image, shape: [24, 32, 3]}}
action: {{key: action, topic: forward_position_controller/commands, type: std_msgs/msg/Float64MultiArray,
         names: {JOINTS}}}
complementary_info:
  - {{key: complementary_info.is_intervention, topic: intervention, type: std_msgs/msg/Bool,
     names: [is_intervention]}}
command: {{topic: forward_position_controller/commands, type: std_msgs/msg/Float64MultiArray}}
"""


def _bool(value: bool) -> bytes:
    return cdr("std_msgs/msg/Bool", TS.types["std_msgs/msg/Bool"](data=value))


def test_takeover_ticks_are_flagged_on_exactly_their_frames(tmp_path: Path) -> None:
    contract = load_contract(contract_file(tmp_path, CONTRACT))
    rec = Recorder(RecordConfig(root=tmp_path / "ds", vcodec="h264", autostart=False, episode_time_s=0), contract)
    rec.open()
    rec.start_episode()
    taken_over = range(30, 55)  # ticks where a person drove: the command is the leader's (value 100 + i)
    for i in range(90):
        ns = 1_000_000_000 + round(i * 1e9 / 30)
        person = i in taken_over
        rec.on_message("joint_states", joint_state(ns, np.full(6, float(i))), ns)
        rec.on_message("cameras/top/image_raw", image(ns, frame_image(i)), ns)
        # as the policy node publishes them: the flag, then the command, in one tick
        rec.on_message("intervention", _bool(person), ns + 1_000_000)
        command = float_array(np.full(6, (100 if person else 0) + i))
        rec.on_message("forward_position_controller/commands", command, ns + 1_000_000)
    assert rec.stop_episode()[0]
    assert rec.wait_converted(60)
    rec.close()

    info = json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())
    assert info["features"]["complementary_info.is_intervention"] == {
        "dtype": "float32",
        "shape": [1],
        "names": ["is_intervention"],
    }
    ds = LeRobotDataset(tmp_path / "ds")
    flag = ds.column("complementary_info.is_intervention").reshape(-1)
    by_person = ds.column("action")[:, 0] >= 100
    assert flag.dtype == np.float32 and set(np.unique(flag)) == {0.0, 1.0}
    np.testing.assert_array_equal(flag == 1.0, by_person)
    assert 20 <= flag.sum() <= len(taken_over)


def test_an_episode_without_the_flag_topic_converts_with_zeros(tmp_path: Path) -> None:
    """Plain teleop recorded with a DAgger contract: no policy node, no flag publisher."""
    contract = load_contract(contract_file(tmp_path, CONTRACT))
    rec = Recorder(RecordConfig(root=tmp_path / "ds", vcodec="h264", autostart=False, episode_time_s=0), contract)
    rec.open()
    rec.start_episode()
    for i in range(30):
        ns = 1_000_000_000 + round(i * 1e9 / 30)
        rec.on_message("joint_states", joint_state(ns, np.full(6, float(i))), ns)
        rec.on_message("cameras/top/image_raw", image(ns, frame_image(i)), ns)
        rec.on_message("forward_position_controller/commands", float_array(np.full(6, i)), ns + 1_000_000)
    assert rec.stop_episode()[0]
    assert rec.wait_converted(60)
    rec.close()
    flag = LeRobotDataset(tmp_path / "ds").column("complementary_info.is_intervention")
    assert len(flag) > 20 and not flag.any()
