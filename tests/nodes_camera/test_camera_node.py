"""Camera node as a process: SIGINT stops the capture thread before the ROS context goes away."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")


def _start_camera(ros_env: dict[str, str], name: str) -> subprocess.Popen:
    # Small frames at a high rate: the capture thread is inside publish() most of the time, which is
    # where a context shut down before close() showed up as "publisher's context is invalid".
    params = [f"name:={name}", "width:=64", "height:=48", "fps:=400.0"]
    return subprocess.Popen(
        [sys.executable, "-m", "apprentice.nodes.camera_node", "--ros-args", "-r", f"__node:=camera_{name}"]
        + [arg for p in params for arg in ("-p", p)],
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"camera node never logged {text!r} (exit {proc.poll()})")


def test_sigint_to_a_lone_camera_node_exits_cleanly_every_time(ros_env: dict[str, str]) -> None:
    for attempt, delay in enumerate((0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8)):
        proc = _start_camera(ros_env, f"c{attempt}")
        _wait_for(proc, "camera 'c")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, f"attempt {attempt} (SIGINT after {delay} s): exit {proc.returncode}\n{err}"
        for bad in ("Traceback", "RCLError", "context is invalid"):
            assert bad not in err + out, f"attempt {attempt} (SIGINT after {delay} s):\n{err}"
