"""Conversion speed: a 60 s, 30 fps, one-camera 640x480 bag -> dataset, vs bare video encode of the same frames.

    python benchmarks/bag_convert_speed.py [--seconds 60] [--vcodec libsvtav1] [--workdir /tmp/bench]

Prints one JSON object. `ratio` = convert frames/s / bare-encode frames/s (goal >= 0.8): the bare
encode is the dataset's own EpisodeEncoder fed frames already in memory, i.e. the floor no converter
can beat; conversion adds reading the MCAP, CDR decoding, alignment, parquet and stats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

from apprentice.bag.convert import convert_bag
from apprentice.bag.writer import BagWriter
from apprentice.contract import contract_from_dict
from apprentice.dataset import DatasetWriter
from apprentice.dataset.video import EpisodeEncoder

JOINTS = [f"j{i}" for i in range(6)]
TS = get_typestore(Stores.ROS2_KILTED)


def camera_like_frames(n: int, height: int, width: int) -> list[np.ndarray]:
    """Smooth texture that moves, plus sensor noise: compresses like a real scene, not like flat colour."""
    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    base = np.kron(low, np.ones((16, 16, 1), np.float32))
    frames = []
    for i in range(n):
        shifted = np.roll(base, (i * 3, i * 5), axis=(0, 1))[:height, :width]
        frames.append(np.clip(shifted + rng.normal(0, 3, shifted.shape), 0, 255).astype(np.uint8))
    return frames


def _template(msg_type: str, msg: object) -> bytearray:
    return bytearray(TS.serialize_cdr(msg, msg_type))


def _stamped(template: bytearray, stamp_ns: int) -> bytes:
    struct.pack_into("<iI", template, 4, stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
    return bytes(template)


def write_bench_bag(path: Path, frames: list[np.ndarray], seconds: float, fps: int) -> float:
    T, H = TS.types["builtin_interfaces/msg/Time"], TS.types["std_msgs/msg/Header"]
    header = H(stamp=T(sec=0, nanosec=0), frame_id="cam")
    img_t, js_t = "sensor_msgs/msg/Image", "sensor_msgs/msg/JointState"
    height, width = frames[0].shape[:2]
    images = [
        _template(
            img_t,
            TS.types[img_t](
                header=header,
                height=height,
                width=width,
                encoding="rgb8",
                is_bigendian=0,
                step=width * 3,
                data=f.reshape(-1),
            ),
        )
        for f in frames
    ]
    t0, start = 1_700_000_000_000_000_000, time.perf_counter()
    with BagWriter(path) as w:
        w.add_topic("cameras/top/image_raw", img_t)
        w.add_topic("joint_states", js_t)
        for i in range(int(seconds * 100)):  # 100 Hz joint states
            stamp = t0 + i * 10_000_000
            js = TS.types[js_t](
                header=header,
                name=JOINTS,
                position=np.sin(np.arange(6) + i / 100),
                velocity=np.zeros(0),
                effort=np.zeros(0),
            )
            w.write("joint_states", _stamped(_template(js_t, js), stamp), stamp + 200_000)
            k = i * fps // 100
            if (i * fps) % 100 < fps:  # one camera frame per 1/fps
                cam_stamp = t0 + round(k * 1e9 / fps)
                w.write("cameras/top/image_raw", _stamped(images[k % len(images)], cam_stamp), cam_stamp + 2_000_000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--vcodec", default="libsvtav1", choices=["libsvtav1", "h264"])
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-convert-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frames = camera_like_frames(90, args.height, args.width)
    n = int(args.seconds * args.fps)
    bag_write_s = write_bench_bag(work / "bag", frames, args.seconds, args.fps)
    bag_mb = sum(f.stat().st_size for f in (work / "bag").iterdir()) / 1e6

    start = time.perf_counter()
    encoder = EpisodeEncoder(work / "bare.mp4", fps=args.fps, vcodec=args.vcodec)
    for i in range(n):
        encoder.put(frames[i % len(frames)])
    encoder.finish()
    bare_s = time.perf_counter() - start

    # The dataset writer alone, fed the frames from memory: what conversion costs beyond reading the bag.
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": JOINTS},
        "action": {"dtype": "float32", "shape": [6], "names": JOINTS},
        "observation.images.top": {
            "dtype": "video",
            "shape": [args.height, args.width, 3],
            "names": ["height", "width", "channels"],
        },
    }
    start = time.perf_counter()
    with DatasetWriter.create(work / "ds_direct", features=features, fps=args.fps, vcodec=args.vcodec) as direct:
        zeros = np.zeros(6, np.float32)
        for i in range(n):
            direct.add_frame(
                {"observation.state": zeros, "action": zeros, "observation.images.top": frames[i % len(frames)]}
            )
        direct.save_episode(task="bench")
    writer_only_s = time.perf_counter() - start

    contract = contract_from_dict(
        {
            "fps": args.fps,
            "robot_type": "bench",
            "task": "bench",
            "observations": [
                {
                    "key": "observation.state",
                    "topic": "joint_states",
                    "type": "sensor_msgs/msg/JointState",
                    "names": JOINTS,
                },
                {
                    "key": "observation.images.top",
                    "topic": "cameras/top/image_raw",
                    "type": "sensor_msgs/msg/Image",
                    "shape": [args.height, args.width, 3],
                },
            ],
            "action": {"key": "action", "topic": "joint_states", "type": "sensor_msgs/msg/JointState", "names": JOINTS},
        }
    )
    start = time.perf_counter()
    writer = DatasetWriter.create(
        work / "ds", features=contract.features, fps=args.fps, robot_type="bench", vcodec=args.vcodec
    )
    report = convert_bag(work / "bag", contract, writer)
    writer.finalize()
    convert_s = time.perf_counter() - start
    result = {
        "benchmark": "bag_convert_speed",
        "frames": n,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "vcodec": args.vcodec,
        "bag_mb": round(bag_mb, 1),
        "bag_write_s": round(bag_write_s, 2),
        "converted_frames": report.frames,
        "dropped_ticks": report.dropped,
        "bare_encode_s": round(bare_s, 2),
        "bare_encode_fps": round(n / bare_s, 1),
        "writer_only_s": round(writer_only_s, 2),
        "writer_only_fps": round(n / writer_only_s, 1),
        "convert_s": round(convert_s, 2),
        "convert_fps": round(report.frames / convert_s, 1),
        "ratio": round((report.frames / convert_s) / (n / bare_s), 3),
        "ratio_vs_writer_only": round((report.frames / convert_s) / (n / writer_only_s), 3),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
