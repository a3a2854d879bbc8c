"""`apprentice sim-bus` as a user runs it: a separate process another program connects to by path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from apprentice.motors import FeetechBus, Motor

SRC = Path(__file__).parents[2] / "src"


def test_sim_bus_process_serves_a_real_sdk_and_cleans_up(tmp_path: Path) -> None:
    link = tmp_path / "ttyARM"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "apprentice.cli", "sim-bus", "--robot.type=so101_follower", f"--link={link}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = json.loads(process.stdout.readline())
        assert info["protocol"] == "feetech" and info["motors"]["gripper"] == 6
        assert os.path.realpath(link) == info["port"]
        bus = FeetechBus(str(link), {"gripper": Motor(6, "sts3215"), "shoulder_pan": Motor(1, "sts3215")})
        bus.connect()
        bus.enable_torque()
        bus.write("Goal_Position", "gripper", 2500, normalize=False)
        assert bus.read("Goal_Position", "gripper", normalize=False) == 2500
        bus.disconnect()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read()
    assert not link.exists()


def test_sim_bus_rejects_unknown_robot() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "apprentice.cli", "sim-bus", "--robot.type=nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 1 and "available types" in result.stderr
