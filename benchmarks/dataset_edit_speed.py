"""Edit speed on a 640x480 AV1 dataset: the operations that copy video packets (delete, split, merge, tasks,
stats) against the ones that decode and encode (re-encode). Prints one JSON object.

    python benchmarks/dataset_edit_speed.py [--episodes 10] [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from apprentice.dataset import DatasetWriter, edit
from dataset_write import make_frames

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "observation.images.top": {"dtype": "video", "shape": [480, 640, 3], "names": None},
    "action": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    frames = make_frames(args.frames)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        src = t / "src"
        start = time.perf_counter()
        with DatasetWriter.create(src, features=FEATURES, fps=30) as w:
            for e in range(args.episodes):
                for frame in frames:
                    state = rng.normal(size=6).astype(np.float32)
                    w.add_frame({"observation.state": state, "observation.images.top": frame, "action": state})
                w.save_episode(task=f"task {e % 3}")
        record_s = time.perf_counter() - start
        total = args.episodes * args.frames
        ops = {
            "delete-episodes (half)": lambda: edit.delete_episodes(src, range(0, args.episodes, 2), out=t / "d"),
            "split 0.8/0.2": lambda: edit.split_dataset(src, {"train": 0.8, "val": 0.2}, out=t / "s"),
            "merge (src twice)": lambda: edit.merge_datasets([src, src], out=t / "m"),
            "modify-tasks": lambda: edit.modify_tasks(src, new_task="one", out=t / "t"),
            "recompute-stats": lambda: edit.recompute_stats(src, out=t / "r"),
            "recompute-stats --images": lambda: edit.recompute_stats(src, images=True, out=t / "ri"),
            "reencode-videos h264": lambda: edit.reencode_videos(src, vcodec="h264", out=t / "h"),
        }
        results = {"source": {"episodes": args.episodes, "frames": total, "record_s": round(record_s, 2),
                              "mb": round(sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / 2**20, 1)}}
        for name, op in ops.items():
            start = time.perf_counter()
            op()
            seconds = time.perf_counter() - start
            frames_in = 2 * total if name.startswith("merge") else total
            results[name] = {"s": round(seconds, 2), "source_frames_per_s": round(frames_in / seconds)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
