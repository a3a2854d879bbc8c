"""Sentry recording without ROS: a rolling window saved as an episode only when a trigger fires."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from recorder_bagmaker import JOINTS, contract_file, frame_image, image, joint_state

from apprentice.bag import BagError
from apprentice.bag.keys import progress_line
from apprentice.bag.recording import DONE, RECORDING, RecordConfig, Recorder
from apprentice.bag.sentry import SentryBuffer
from apprentice.contract import load_contract
from apprentice.dataset import LeRobotDataset

T0 = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_buffer_keeps_only_the_window_and_drains_empty() -> None:
    buf = SentryBuffer(window_s=1.0)
    for i in range(100):  # 10 Hz for 10 s
        buf.add("a", bytes(10), T0 + i * 100_000_000)
    assert len(buf) == 11 and buf.nbytes == 110  # 9.0 s .. 10.0 s (inclusive)
    assert buf.span_s() == pytest.approx(1.0)
    out = buf.drain()
    assert out[0].log_time_ns == T0 + 89 * 100_000_000
    assert len(buf) == 0 and buf.nbytes == 0 and buf.span_s() == 0.0
    with pytest.raises(BagError, match="sentry window must be > 0"):
        SentryBuffer(0)


def _feed(rec: Recorder, clock: Clock, seconds: float, start: int) -> int:
    """30 Hz state + leader + camera; the state's value is the message index, so an episode says when it was."""
    i = start
    for _ in range(round(seconds * 30)):
        ns = T0 + round(i * 1e9 / 30)
        rec.on_message("joint_states", joint_state(ns, np.full(6, float(i))), ns)
        rec.on_message("leader/joint_states", joint_state(ns, np.full(6, i + 0.5)), ns)
        rec.on_message("cameras/top/image_raw", image(ns, frame_image(i)), ns)
        clock.t += 1 / 30
        rec.tick()
        i += 1
    return i


def test_sentry_saves_only_triggered_windows(tmp_path: Path) -> None:
    clock = Clock()
    contract = load_contract(contract_file(tmp_path))
    cfg = RecordConfig(root=tmp_path / "ds", vcodec="h264", sentry_window_s=1.0, episode_time_s=0.5)
    rec = Recorder(cfg, contract, clock=clock)
    rec.open()
    rec.start_session()
    assert rec.state == RECORDING
    i = _feed(rec, clock, 3.0, 0)  # longer than episode_time_s: a sentry never ends an episode on time
    assert rec.state == RECORDING and rec.episodes_recorded == 0
    assert rec.status()["frames"] == 31  # the window's camera frames
    first_trigger = i - 1
    ok, msg = rec.trigger(True)
    assert ok and "episode_000000" in msg
    assert rec.trigger(True) is None  # still True: no rising edge, nothing saved
    i = _feed(rec, clock, 2.0, i)
    assert rec.trigger(False) is None
    i = _feed(rec, clock, 0.5, i)
    second_trigger = i - 1
    assert rec.stop_episode()[0]  # → key / recorder/stop_episode: save now
    assert rec.state == RECORDING
    _feed(rec, clock, 2.0, i)  # never triggered: dropped when the session ends
    assert rec.wait_converted(60)
    rec.close()

    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2
    state = ds.column("observation.state")[:, 0]
    episode = ds.column("episode_index")
    first, second = state[episode == 0], state[episode == 1]
    # Each episode is the last second before its trigger, nothing older, nothing after.
    assert first.max() == first_trigger and first.min() >= first_trigger - 30
    assert second.max() == second_trigger and second.min() >= second_trigger - 30
    assert len(first) >= 25 and len(second) >= 25
    assert set(state) <= set(range(second_trigger + 1))  # the untriggered tail is not in the dataset
    assert (ds.column("action")[:, 0] == state + 0.5).all()


def test_sentry_with_num_episodes_ends_the_session(tmp_path: Path) -> None:
    clock = Clock()
    cfg = RecordConfig(root=tmp_path / "ds", vcodec="h264", sentry_window_s=0.5, num_episodes=1)
    rec = Recorder(cfg, load_contract(contract_file(tmp_path)), clock=clock)
    rec.open()
    rec.start_session()
    assert rec.stop_episode() == (False, "sentry: nothing buffered on cameras/top/image_raw yet; no episode saved")
    _feed(rec, clock, 1.0, 0)
    assert rec.discard_episode() == (True, "sentry window dropped")
    _feed(rec, clock, 1.0, 30)
    assert rec.stop_episode()[0]
    assert rec.state == DONE
    assert rec.wait_converted(60)
    rec.close()
    assert LeRobotDataset(tmp_path / "ds").num_episodes == 1


def test_an_action_from_the_command_topic_is_not_awaited(tmp_path: Path) -> None:
    """Evaluation/DAgger contracts record the executed command, which only flows once an episode runs."""
    text = f"""
fps: 30
robot_type: test_arm
task: t
observations:
  - {{key: observation.state, topic: joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS}}}
action: {{key: action, topic: forward_position_controller/commands, type: std_msgs/msg/Float64MultiArray,
         names: {JOINTS}}}
complementary_info:
  - {{key: complementary_info.is_intervention, topic: intervention, type: std_msgs/msg/Bool,
     names: [is_intervention]}}
"""
    dagger = Recorder(RecordConfig(root=tmp_path / "a"), load_contract(contract_file(tmp_path, text)))
    assert dagger.awaited_topics == {"joint_states"}
    assert "intervention" in dagger.topic_types and "forward_position_controller/commands" in dagger.topic_types
    teleop = Recorder(RecordConfig(root=tmp_path / "b"), load_contract(contract_file(tmp_path)))
    assert teleop.awaited_topics == {"joint_states", "leader/joint_states", "cameras/top/image_raw"}


def test_the_policy_fault_shows_in_the_status(tmp_path: Path) -> None:
    rec = Recorder(RecordConfig(root=tmp_path / "ds"), load_contract(contract_file(tmp_path)))
    assert rec.status()["fault"] == "" and "FAULT" not in progress_line(rec.status())
    rec.fault = "inputs stalled: nothing for 0.600 s (timeout 0.500 s)"
    assert rec.status()["fault"] == rec.fault
    assert progress_line(rec.status()).endswith(f"POLICY FAULT: {rec.fault}")
