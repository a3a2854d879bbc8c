"""Writer throughput: 6-dof state/action + one 480x640 camera at 30 fps, AV1 (libsvtav1) and H.264, against
PyAV encoding the same frames bare (no dataset). Prints one JSON object.

    python benchmarks/dataset_write.py [--episodes 3] [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from apprentice.dataset import DatasetWriter
from apprentice.dataset.video import codec_names, encoder_options

HEIGHT, WIDTH, FPS = 480, 640, 30


def make_frames(n: int) -> list[np.ndarray]:
    """A moving scene with texture and sensor noise, so the encoder works as on a real camera."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([(xx * 255 // WIDTH), (yy * 255 // HEIGHT), ((xx + yy) % 256)], axis=-1).astype(np.int16)
    frames = []
    for i in range(n):
        frame = np.roll(base, shift=4 * i, axis=1) + rng.integers(-6, 7, size=base.shape, dtype=np.int16)
        cx, cy = 100 + (3 * i) % 400, 120 + (2 * i) % 200
        frame[cy:cy + 60, cx:cx + 80] = (230, 40, 40)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def bare_encode(frames: list[np.ndarray], vcodec: str, out: Path) -> float:
    encoder, _ = codec_names(vcodec)
    start = time.perf_counter()
    with av.open(str(out), "w") as container:
        stream = container.add_stream(encoder, rate=FPS, options=encoder_options(encoder, gop=2, crf=30, preset=None))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    return len(frames) / (time.perf_counter() - start)


def write_dataset(frames: list[np.ndarray], episodes: int, vcodec: str, root: Path) -> dict:
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
        "observation.images.top": {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "names": None},
        "action": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    }
    add_ms, save_s = [], []
    start = time.perf_counter()
    with DatasetWriter.create(root, features=features, fps=FPS, robot_type="bench", vcodec=vcodec) as w:
        for e in range(episodes):
            for i, frame in enumerate(frames):
                t = time.perf_counter()
                w.add_frame({"observation.state": np.full(6, i, np.float32), "observation.images.top": frame,
                             "action": np.full(6, e, np.float32), "task": "bench"})
                add_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            w.save_episode()
            save_s.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    n = episodes * len(frames)
    return {"frames": n, "end_to_end_fps": round(n / total, 1),
            "add_frame_ms_mean": round(float(np.mean(add_ms)), 3),
            "add_frame_ms_p99": round(float(np.percentile(add_ms, 99)), 3),
            "save_episode_s_mean": round(float(np.mean(save_s)), 3),
            "video_mb": round(sum(p.stat().st_size for p in root.rglob("*.mp4")) / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--frames", type=int, default=150, help="frames per episode")
    args = parser.parse_args()
    frames = make_frames(args.frames)
    results: dict = {"camera": f"{WIDTH}x{HEIGHT}", "fps": FPS, "episodes": args.episodes,
                     "frames_per_episode": args.frames}
    with tempfile.TemporaryDirectory() as tmp:
        for vcodec in ("libsvtav1", "h264"):
            bare = bare_encode(frames * args.episodes, vcodec, Path(tmp) / f"bare-{vcodec}.mp4")
            writer = write_dataset(frames, args.episodes, vcodec, Path(tmp) / f"ds-{vcodec}")
            writer["bare_pyav_encode_fps"] = round(bare, 1)
            writer["writer_vs_bare"] = round(writer["end_to_end_fps"] / bare, 2)
            results[vcodec] = writer
    print(json.dumps(results))


if __name__ == "__main__":
    main()
