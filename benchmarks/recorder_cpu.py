"""Recorder CPU use at 30 fps with 2 cameras (640x480 rgb8) + 100 Hz follower/leader joint states.

    python benchmarks/recorder_cpu.py [--episode_time_s 10] [--width 640 --height 480]

Starts two camera nodes, a joint-state publisher and `apprentice record` (2 timed episodes) as separate
processes on loopback, and reads the recorder's CPU time from /proc: while it only records (episode 1),
and while it records episode 2 as episode 1 is converted in the background. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

PUBLISHER = textwrap.dedent("""
    import rclpy, math
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    rclpy.init()
    node = Node("bench_joints")
    names = ["j%d" % i for i in range(6)]
    pubs = [node.create_publisher(JointState, t, 10) for t in ("joint_states", "leader/joint_states")]
    def tick():
        m = JointState(name=names, position=[math.sin(time.time() + i) for i in range(6)])
        m.header.stamp = node.get_clock().now().to_msg()
        for p in pubs:
            p.publish(m)
    import time
    node.create_timer(0.01, tick)
    rclpy.spin(node)
""")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_reader():
    import rclpy
    from apprentice.msg import EpisodeStatus
    from rclpy.qos import DurabilityPolicy, QoSProfile

    rclpy.init()
    node = rclpy.create_node("bench_status")
    latest: list = [None]
    node.create_subscription(
        EpisodeStatus,
        "recorder/status",
        lambda m: latest.__setitem__(0, m),
        QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL),
    )

    def get(timeout: float = 0.1):
        rclpy.spin_once(node, timeout_sec=timeout)
        return latest[0]

    return get


def wait_for(get, pred, timeout: float) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = get()
        if s is not None and pred(s):
            return s
    raise TimeoutError("recorder did not reach the expected state; see its log")


def measure(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episode_time_s", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    work = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    shape = [args.height, args.width, 3]
    contract = {
        "fps": 30,
        "robot_type": "bench",
        "task": "bench",
        "max_drop_ratio": 0.5,
        "observations": [
            {
                "key": "observation.state",
                "topic": "joint_states",
                "type": "sensor_msgs/msg/JointState",
                "names": [f"j{i}" for i in range(6)],
            },
            {
                "key": "observation.images.front",
                "topic": "cameras/front/image_raw",
                "type": "sensor_msgs/msg/Image",
                "shape": shape,
            },
            {
                "key": "observation.images.wrist",
                "topic": "cameras/wrist/image_raw",
                "type": "sensor_msgs/msg/Image",
                "shape": shape,
            },
        ],
        "action": {
            "key": "action",
            "topic": "leader/joint_states",
            "type": "sensor_msgs/msg/JointState",
            "names": [f"j{i}" for i in range(6)],
        },
    }
    (work / "contract.yaml").write_text(yaml.safe_dump(contract))
    py = sys.executable
    procs = [
        subprocess.Popen(
            [
                py,
                "-m",
                "apprentice.nodes.camera_node",
                "--ros-args",
                "-p",
                f"name:={cam}",
                "-p",
                f"width:={args.width}",
                "-p",
                f"height:={args.height}",
                "-p",
                "fps:=30.0",
                "-r",
                f"__node:=camera_{cam}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for cam in ("front", "wrist")
    ]
    procs.append(subprocess.Popen([py, "-c", PUBLISHER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    log = open(work / "recorder.log", "w")  # noqa: SIM115
    time.sleep(2.0)  # publishers up before the first episode starts
    recorder = subprocess.Popen(
        [
            py,
            "-m",
            "apprentice.nodes.recorder_node",
            "--contract",
            str(work / "contract.yaml"),
            "--dataset.root",
            str(work / "ds"),
            "--dataset.num_episodes",
            "2",
            "--dataset.episode_time_s",
            str(args.episode_time_s),
            "--dataset.reset_time_s",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        get = status_reader()
        span = args.episode_time_s - 2.0
        wait_for(get, lambda s: s.state_name == "RECORDING" and s.episode_index == 0, 60)
        time.sleep(1.0)
        recording = measure(recorder.pid, span)
        wait_for(get, lambda s: s.state_name == "RECORDING" and s.episode_index >= 1, 60)
        time.sleep(1.0)
        recording_converting = measure(recorder.pid, span)
        done = wait_for(get, lambda s: s.episodes_saved == 2, 300)
        recorder.wait(60)
    finally:
        for p in [recorder, *procs]:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
    meta = yaml.safe_load((work / "ds_bags" / "episode_000000" / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    duration = info["duration"]["nanoseconds"] / 1e9
    rates = {
        t["topic_metadata"]["name"]: round(t["message_count"] / duration, 1) for t in info["topics_with_message_count"]
    }
    size = sum(f.stat().st_size for f in (work / "ds_bags" / "episode_000000").iterdir())
    print(
        json.dumps(
            {
                "benchmark": "recorder_cpu",
                "cameras": 2,
                "width": args.width,
                "height": args.height,
                "fps": 30,
                "recorder_cpu_pct_recording": round(recording, 1),
                "recorder_cpu_pct_recording_while_converting": round(recording_converting, 1),
                "recorded_rates_hz": rates,
                "bag_mb_per_s": round(size / 1e6 / duration, 1),
                "dropped_ticks_last_episode": done.dropped_ticks,  # type: ignore[attr-defined]
                "cpus": os.cpu_count(),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
