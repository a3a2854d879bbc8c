"""Rollout strategies on a real ROS 2 graph: recorder node + policy node (real processes) + a test robot.

- human takeover (DAgger): the leader arm moves, the policy node relays it and flags the frames; the
  flag loads back from the dataset on those frames;
- a watchdog that tripped stays tripped across the recorder's next episode, shown in its EpisodeStatus,
  until the operator calls ~/enable;
- sentry: the policy drives continuously, only triggered windows become episodes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # each starts a recorder and a policy node: 20-40 s

rclpy = pytest.importorskip("rclpy")

from deploy_helpers import JOINTS, SimReachInputs, spin, wait_for  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

REST = np.array([0.1, -0.2, 0.3, 0.0, 0.1, 0.2])
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Robot(Node):
    """The sim_reach topics at 30 Hz, a passive leader arm, and the operator's service clients."""

    def __init__(self) -> None:
        from apprentice.msg import EpisodeStatus
        from apprentice.srv import StartEpisode

        super().__init__("rollout_robot")
        self.camera_on = True
        self.leader = REST.copy()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.statuses: list[Any] = []
        self.faults: list[str] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.inputs = SimReachInputs(self)
        self.leader_pub = self.create_publisher(JointState, "leader/joint_states", 10)
        self.success_pub = self.create_publisher(Bool, "sim/is_success", 10)
        self.create_subscription(Float64MultiArray, "forward_position_controller/commands", self._on_command, 10)
        self.create_subscription(EpisodeStatus, "recorder/status", self.statuses.append, LATCHED)
        self.create_subscription(String, "policy_node/fault", lambda m: self.faults.append(m.data), LATCHED)
        self.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.extend(m.status), 10)
        self.start_client = self.create_client(StartEpisode, "recorder/start_episode")
        self.start_request = StartEpisode.Request
        self.stop_client = self.create_client(Trigger, "recorder/stop_episode")
        self.takeover_client = self.create_client(SetBool, "policy_node/takeover")
        self.enable_client = self.create_client(SetBool, "policy_node/enable")
        self.create_timer(1 / 30, self._publish)

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.commands.append((time.monotonic(), np.array(msg.data)))

    def _publish(self) -> None:
        stamp = self.inputs.publish(REST, self.camera_on)
        lead = JointState(name=JOINTS, position=self.leader.tolist())
        lead.header.stamp = stamp
        self.leader_pub.publish(lead)

    def commands_since(self, t: float) -> list[np.ndarray]:
        return [c for when, c in list(self.commands) if when >= t]


@pytest.fixture
def robot() -> Iterator[Robot]:
    yield from spin(Robot)


def call(client: Any, request: Any) -> Any:
    assert client.wait_for_service(timeout_sec=60), f"{client.srv_name} not available"
    future = client.call_async(request)
    wait_for(future.done, 10, f"the reply of {client.srv_name}")
    return future.result()


def start_nodes(tmp_path: Path, env: dict[str, str], tiny_act: Path, recorder: list[str], policy: list[str]):
    import yaml

    from apprentice.resources import config_path

    env = {**env, "OMP_NUM_THREADS": "1"}
    # The shipped DAgger contract, tolerant of the ticks a loaded CI box holds (stale inputs, no command).
    contract = yaml.safe_load(config_path("contracts", "sim_reach_dagger.yaml").read_text())
    contract["max_drop_ratio"] = 0.6
    path = tmp_path / "sim_reach_dagger.yaml"
    path.write_text(yaml.safe_dump(contract))
    rec_cmd = [sys.executable, "-m", "apprentice.nodes.recorder_node", "--ros-args"]
    for p in [f"contract:={path}", f"root:={tmp_path / 'ds'}", "vcodec:=h264", *recorder]:
        rec_cmd += ["-p", p]
    pol_cmd = [sys.executable, "-m", "apprentice.cli", "infer", f"--policy.path={tiny_act}", "--device=cpu"]
    # A loaded CI box can stall a tick for a second: only the watchdog test wants a trip (its inputs').
    pol_cmd += [f"--contract={path}", "--ros-args", "-p", "follow_recorder:=true"]
    pol_cmd += ["-p", "action_timeout_s:=10.0", "-p", "input_timeout_s:=5.0"]
    for p in policy:
        pol_cmd += ["-p", p]
    logs = tmp_path / "recorder.log", tmp_path / "policy.log"
    procs = [
        subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        for cmd, log in zip((rec_cmd, pol_cmd), logs)
    ]
    return procs, lambda: "\n".join(f"--- {log.name}\n{log.read_text()}" for log in logs)


def stop_all(procs: list[subprocess.Popen]) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def wait_recorder_subscribed(robot: Robot, logs: Callable[[], str]) -> None:
    """The recorder subscribes once it sees each topic's publisher (the policy node's among them)."""
    topics = ("joint_states", "sim/target", "cameras/top/image_raw", "intervention")
    wait_for(
        lambda: all(robot.count_subscribers(t) >= 1 for t in topics)
        and robot.count_subscribers("forward_position_controller/commands") >= 2,
        90,
        logs,
    )
    time.sleep(0.5)


def test_takeover_segment_is_recorded_with_its_flag(robot: Robot, tiny_act: Path, ros_env, tmp_path) -> None:
    procs, logs = start_nodes(
        tmp_path, ros_env, tiny_act, ["autostart:=false", "episode_time_s:=0.0"], ["takeover_threshold:=0.2"]
    )
    leader_pose = REST + np.array([0.3, 0.3, -0.3, 0.3, 0.3, 0.3])
    is_leader = lambda c: np.allclose(c, leader_pose, atol=1e-9)  # noqa: E731
    try:
        wait_for(lambda: robot.takeover_client.service_is_ready(), 90, logs)
        wait_recorder_subscribed(robot, logs)
        assert robot.commands == [], "the policy must not drive before the recorder records"
        # A teleop node still forwarding the leader (a second commander): the policy node refuses to drive.
        forwarding = robot.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        wait_for(lambda: robot.count_publishers("forward_position_controller/commands") >= 2, 10, "the publisher")
        started = call(robot.start_client, robot.start_request())
        assert started.success, started.message
        wait_for(lambda: "1 other publisher(s) on forward_position_controller/commands" in logs(), 30, logs)
        time.sleep(1.0)
        assert robot.commands == [], "two commanders would fight over the arm"
        robot.destroy_publisher(forwarding)
        t0 = time.monotonic()
        wait_for(lambda: len(robot.commands_since(t0)) >= 20, 30, logs)
        assert not any(is_leader(c) for c in robot.commands_since(t0))
        robot.leader = leader_pose  # the operator grabs the leader arm and moves it by 0.3 rad
        t1 = time.monotonic()
        wait_for(lambda: sum(map(is_leader, robot.commands_since(t1))) >= 20, 30, logs)
        handed = call(robot.takeover_client, SetBool.Request(data=False))
        assert handed.success and handed.message == "handed back to the policy"
        t2 = time.monotonic()
        time.sleep(0.2)
        wait_for(lambda: len(robot.commands_since(t2 + 0.2)) >= 20, 30, logs)
        assert not any(is_leader(c) for c in robot.commands_since(t2 + 0.2)), "the policy drives again"
        stopped = call(robot.stop_client, Trigger.Request())
        assert stopped.success, stopped.message
        wait_for(lambda: robot.statuses and robot.statuses[-1].episodes_saved == 1, 60, logs)
    finally:
        codes = stop_all(procs)
    assert codes == [0, 0], logs()
    assert "human takeover: leader arm moved 0.300 rad" in logs()

    from apprentice.dataset import LeRobotDataset

    info = json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())
    assert info["features"]["complementary_info.is_intervention"] == {
        "dtype": "float32",
        "shape": [1],
        "names": ["is_intervention"],
    }
    ds = LeRobotDataset(tmp_path / "ds")
    flag = ds.column("complementary_info.is_intervention").reshape(-1)
    action = ds.column("action")
    assert set(np.unique(flag)) == {0.0, 1.0}
    by_leader = np.array([np.allclose(a, leader_pose, atol=1e-6) for a in action])  # float32 in the dataset
    flagged = flag == 1.0
    block = np.flatnonzero(flagged)
    first, last = block[0], block[-1]
    assert np.all(np.diff(block) == 1), "one takeover: one contiguous flagged segment"
    assert by_leader[first : last + 1].sum() >= 15 and (~flagged[:first]).sum() >= 10
    # (a frame right before the segment may see the command before the flag: two topics, two receipts)
    assert not by_leader[: max(0, first - 1)].any(), "before the takeover every action is the policy's"
    # Ticks the node held (stale inputs, the policy's first inference) publish nothing, and the arm keeps
    # the last command, which is what the frame records: at most a run of the policy's last action at the
    # start of the segment, a run of the leader's last target after the hand-back — and nothing else.
    inside = by_leader[first : last + 1]
    held_at_start = int(np.argmax(inside))
    assert inside[held_at_start:].all(), "once the leader drives, it drives every frame of the segment"
    after = by_leader[last + 1 :]
    held_after = int(np.argmin(after)) if not after.all() else len(after)
    assert not after[held_after:].any() and (~after).sum() >= 10, "after the hand-back only the policy drives"
    # Without holds the two agree up to one boundary frame: the flag and the command are separate headerless
    # topics published back to back in one tick, sampled by receive time.
    assert held_at_start <= 1 or "stale" in logs(), (held_at_start, logs())
    assert held_after <= 1 or "stale" in logs() or "waiting" in logs(), (held_after, logs())


def test_a_tripped_watchdog_stays_tripped_across_episodes(robot: Robot, tiny_act: Path, ros_env, tmp_path) -> None:
    procs, logs = start_nodes(
        tmp_path,
        ros_env,
        tiny_act,
        ["autostart:=false", "episode_time_s:=0.0"],
        ["input_timeout_s:=2.0", "diagnostics_period_s:=0.25"],
    )
    try:
        wait_for(lambda: robot.enable_client.service_is_ready(), 90, logs)
        wait_recorder_subscribed(robot, logs)
        assert call(robot.start_client, robot.start_request()).success
        t0 = time.monotonic()
        wait_for(lambda: len(robot.commands_since(t0)) >= 3, 30, logs)
        robot.camera_on = False  # the camera dies mid-episode: inputs stall, the watchdog trips
        wait_for(lambda: robot.statuses and "inputs stalled" in robot.statuses[-1].fault, 30, logs)
        assert robot.faults and "inputs stalled" in robot.faults[-1]
        robot.camera_on = True
        assert call(robot.stop_client, Trigger.Request()).success
        assert call(robot.start_client, robot.start_request()).success  # the next episode ...
        t1 = time.monotonic()
        wait_for(lambda: robot.statuses and robot.statuses[-1].state == robot.statuses[-1].RECORDING, 10, logs)
        time.sleep(1.5)
        assert robot.commands_since(t1) == [], "a new episode must not re-arm a tripped watchdog"
        assert "inputs stalled" in robot.statuses[-1].fault  # ... still shows the latched fault
        latest = [s for s in robot.diagnostics if s.name.endswith("policy inference")][-1]
        assert latest.level == DiagnosticStatus.ERROR and latest.message.startswith("watchdog latched")
        seen = len(robot.statuses)
        reply = call(robot.enable_client, SetBool.Request(data=True))  # the operator re-arms
        assert reply.success and reply.message == "enabled"
        t2 = time.monotonic()
        wait_for(lambda: len(robot.commands_since(t2)) >= 3, 30, logs)
        wait_for(lambda: any(st.fault == "" for st in robot.statuses[seen:]), 10, logs)
        tripped = max(i for i, f in enumerate(robot.faults) if f)
        assert "" in robot.faults[tripped + 1 :]  # ~/fault went back to "" (armed)
        assert call(robot.stop_client, Trigger.Request()).success
    finally:
        codes = stop_all(procs)
    assert codes == [0, 0], logs()
    assert "watchdog still tripped" in logs()


def test_sentry_saves_only_triggered_episodes(robot: Robot, tiny_act: Path, ros_env, tmp_path) -> None:
    procs, logs = start_nodes(
        tmp_path,
        ros_env,
        tiny_act,
        ["autostart:=true", "sentry_window_s:=1.0", "sentry_trigger_topic:=sim/is_success"],
        [],
    )
    try:
        wait_for(lambda: robot.statuses and robot.statuses[-1].state == robot.statuses[-1].RECORDING, 90, logs)
        wait_for(lambda: robot.enable_client.service_is_ready(), 90, logs)
        t0 = time.monotonic()
        wait_for(lambda: len(robot.commands_since(t0)) >= 20, 30, "the policy driving while the sentry watches")
        time.sleep(1.0)  # the window fills with the policy's commands
        for _ in range(5):  # a success signal that stays True: one rising edge, one episode
            robot.success_pub.publish(Bool(data=True))
            time.sleep(0.1)
        wait_for(lambda: robot.statuses[-1].episodes_saved == 1, 60, logs)
        robot.success_pub.publish(Bool(data=False))
        time.sleep(1.5)
        assert call(robot.stop_client, Trigger.Request()).success  # the operator's trigger (→ key)
        wait_for(lambda: robot.statuses[-1].episodes_saved == 2, 60, logs)
        t1 = time.monotonic()
        time.sleep(1.5)  # more driving, never triggered
        assert len(robot.commands_since(t1)) >= 3, "saving does not stop the policy"
        started = next(i for i, s in enumerate(robot.statuses) if s.state == s.RECORDING)
        assert all(s.state == s.RECORDING for s in robot.statuses[started:])
    finally:
        codes = stop_all(procs)
    assert codes == [0, 0], logs()

    from apprentice.dataset import LeRobotDataset

    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2  # the untriggered last seconds were not saved on shutdown
    for ep in ds.meta.episodes:
        assert 5 <= ep["length"] <= 31  # at most the 1 s window at 30 fps (fewer: ticks a loaded box held)
