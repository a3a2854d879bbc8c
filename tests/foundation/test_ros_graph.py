"""Two processes exchange a custom message and a JointState over rmw_fastrtps; nodes stop cleanly on SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

PEER = Path(__file__).with_name("ros_peer.py")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(PEER), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return
        if proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError(f"no {text!r} within {timeout_s} s")


def test_two_processes_exchange_custom_and_standard_messages(ros_env: dict[str, str]) -> None:
    assert ros_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    listener = start(["listener", "5", "40"], ros_env)
    talker = start(["talker"], ros_env)
    try:
        out, err = listener.communicate(timeout=60)
    finally:
        talker.send_signal(signal.SIGINT)
        talker.communicate(timeout=10)
    assert listener.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    joints = [r for r in records if r["topic"] == "joint_states"]
    statuses = [r for r in records if r["topic"] == "status"]
    assert len(joints) >= 5 and len(statuses) >= 5
    for r in joints:
        assert r["name"][0] == "shoulder_pan" and len(r["position"]) == 6
        i = r["position"][0]
        assert r["position"] == pytest.approx([i + 0.1 * k for k in range(6)])
    indices = [r["episode_index"] for r in statuses]
    assert indices == sorted(indices) and all(r["task"] == f"task {r['episode_index']}" for r in statuses)
    assert {r["state"] for r in statuses} == {2}


def test_node_process_exits_cleanly_on_sigint_within_2s(ros_env: dict[str, str]) -> None:
    talker = start(["talker"], ros_env)
    wait_for_line(talker, "talker ready")
    time.sleep(0.5)  # let it spin and publish
    sent = time.monotonic()
    talker.send_signal(signal.SIGINT)
    out, err = talker.communicate(timeout=10)
    elapsed = time.monotonic() - sent
    assert talker.returncode == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    assert elapsed < 2.0, f"took {elapsed:.2f} s to stop"
