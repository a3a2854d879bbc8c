"""Servo bus throughput over a pseudo-terminal: SYNC_READ / SYNC_WRITE / read+write cycles per second for
6 motors, Feetech (STS3215) and Dynamixel (XL330), with the virtual bus in this process (shares the GIL)
and in its own process (`apprentice sim-bus`, closer to real hardware). Prints one JSON object.

    python benchmarks/motors_bus.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from apprentice.motors import BUS_CLASSES
from apprentice.robots import load_robot
from apprentice.robots.virtual_arm import make_virtual_arm

ROBOTS = {"feetech": "so101_follower", "dynamixel": "koch_follower"}


def measure(port: str, robot_type: str, seconds: float) -> dict[str, float]:
    definition = load_robot(robot_type)
    bus = BUS_CLASSES[definition.vendor](port, definition.motors())
    bus.connect()
    bus.configure()
    bus.enable_torque()
    names = definition.joint_names
    goals = {n: 2048 for n in names}
    results = {}
    for label, step in (
        ("sync_read", lambda: bus.sync_read("Present_Position", names, normalize=False)),
        ("sync_write", lambda: bus.sync_write("Goal_Position", goals, normalize=False)),
        (
            "read_write_cycle",
            lambda: (
                bus.sync_read("Present_Position", names, normalize=False),
                bus.sync_write("Goal_Position", goals, normalize=False),
            ),
        ),
    ):
        latencies = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            step()
            latencies.append(time.perf_counter() - t0)
        # A pty has no baud-rate pacing: SYNC_WRITEs (no status packet) can be issued faster than the
        # virtual motors digest them (a real 1 Mbaud line caps this 26-byte packet at ~3.8 kHz). Let the
        # bus drain before the next measurement so each one starts from an idle bus.
        while bus.ping(names[0]) is None:
            pass
        lat = np.array(latencies) * 1e3
        results[f"{label}_hz"] = round(len(lat) / lat.sum() * 1e3, 1)
        results[f"{label}_p50_ms"] = round(float(np.percentile(lat, 50)), 3)
        results[f"{label}_p99_ms"] = round(float(np.percentile(lat, 99)), 3)
    results["failures"] = bus.health.failures
    results["retries"] = bus.health.retries
    bus.disconnect()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    args = parser.parse_args()
    out: dict[str, object] = {
        "motors": 6,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }
    for vendor, robot_type in ROBOTS.items():
        with make_virtual_arm(load_robot(robot_type)) as virtual:
            out[f"{vendor}_inprocess"] = measure(virtual.port, robot_type, args.seconds)
        src = str(Path(__file__).resolve().parents[1] / "src")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        server = subprocess.Popen(
            [sys.executable, "-m", "apprentice.cli", "sim-bus", f"--robot.type={robot_type}"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            port = json.loads(server.stdout.readline())["port"]
            out[f"{vendor}_subprocess"] = measure(port, robot_type, args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
