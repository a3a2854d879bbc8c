"""Driver node throughput: `joint_states` rate and stamp jitter seen by another process, for a 6-motor arm
on a virtual servo bus hosted by the driver (`port:=virtual`), at several `rate_hz`. Prints one JSON object.

    python benchmarks/motors_driver.py [--seconds 3] [--rates 100 250 500]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # loopback only, before rclpy loads
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(10, 99)))

import numpy as np
import rclpy
from sensor_msgs.msg import JointState


def measure(robot_type: str, rate_hz: float, seconds: float) -> dict[str, float]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apprentice.nodes.driver_node",
            "--ros-args",
            "-p",
            "port:=virtual",
            "-p",
            f"robot_type:={robot_type}",
            "-p",
            f"rate_hz:={rate_hz}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = rclpy.create_node("motors_driver_benchmark")
    stamps: list[float] = []
    node.create_subscription(
        JointState, "joint_states", lambda m: stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9), 100
    )
    try:
        deadline = time.monotonic() + 20
        while not stamps and time.monotonic() < deadline:  # wait for the driver to come up
            rclpy.spin_once(node, timeout_sec=0.1)
        stamps.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        driver.send_signal(signal.SIGINT)
        driver.wait(timeout=10)
    periods = np.diff(stamps) * 1e3
    return {
        "requested_hz": rate_hz,
        "received_hz": round(len(stamps) / seconds, 1),
        "period_p50_ms": round(float(np.percentile(periods, 50)), 2),
        "period_p99_ms": round(float(np.percentile(periods, 99)), 2),
        "exit_code": driver.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 250.0, 500.0])
    args = parser.parse_args()
    rclpy.init()
    try:
        results = {
            robot: [measure(robot, rate, args.seconds) for rate in args.rates]
            for robot in ("so101_follower", "koch_follower")
        }
    finally:
        rclpy.shutdown()
    print(json.dumps({"cpus": os.cpu_count(), **results}, indent=2))


if __name__ == "__main__":
    main()
