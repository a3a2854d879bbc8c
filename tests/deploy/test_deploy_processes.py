"""ProcessGroup: child processes with logs, readiness by log line, and a stop that always works."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from apprentice.deploy import DeployError
from apprentice.deploy.processes import ProcessGroup, node_command, private_ros_env

STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)   # a child that ignores Ctrl-C
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ... and SIGTERM
print("ready", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


def test_stop_escalates_to_sigkill_and_logs_are_kept(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path / "logs", private_ros_env(run_id="t")) as procs:
        proc = procs.start("stubborn", [sys.executable, "-c", STUBBORN])
        procs.wait_for_output("stubborn", r"^ready", 30)
        assert procs.running("stubborn")
        started = time.monotonic()
        code = procs.stop("stubborn", timeout_s=0.5)
        assert code == -9 and time.monotonic() - started < 10
        assert not alive(proc.pid)
    assert (tmp_path / "logs" / "stubborn.log").read_text().startswith("ready")


def test_context_exit_stops_every_child(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path, private_ros_env()) as procs:
        pids = [procs.start(f"p{i}", [sys.executable, "-c", "import time; time.sleep(60)"]).pid for i in range(2)]
    assert not any(alive(pid) for pid in pids)


def test_a_dead_child_is_reported_with_its_log(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path, private_ros_env()) as procs:
        procs.start("crash", [sys.executable, "-c", "import sys; print('bad config: x'); sys.exit(3)"])
        with pytest.raises(DeployError, match=r"(?s)crash exited with code 3.*bad config: x"):
            procs.wait_for_output("crash", r"never printed", 30)
        procs.start("slow", [sys.executable, "-c", "import time; time.sleep(60)"])
        with pytest.raises(DeployError, match="slow did not finish within 1 s"):
            procs.wait("slow", timeout_s=1)


def test_private_ros_env_and_node_command() -> None:
    env = private_ros_env(run_id="abc")
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and env["APPRENTICE_RUN_ID"] == "abc"
    assert 1 <= int(env["ROS_DOMAIN_ID"]) <= 100
    cmd = node_command("sim_node", Path("p.yaml"), {"seed": 3, "render": False})
    assert "from apprentice.nodes.sim_node import main" in cmd[2]
    assert cmd[3:] == ["--ros-args", "--params-file", "p.yaml", "-p", "seed:=3", "-p", "render:=false"]
