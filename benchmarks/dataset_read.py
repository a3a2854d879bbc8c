"""Reader throughput: one 480x640 camera + 6-dof state and an ACT-style action window
(action: [0, 1/fps, ..., 99/fps]), random access, single process and a DataLoader with 2 workers.
Prints one JSON object.

    python benchmarks/dataset_read.py [--vcodec libsvtav1] [--episodes 4] [--frames 150] [--samples 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("SVT_LOG", "1")
sys.path.insert(0, str(Path(__file__).parent))
from apprentice.dataset import DatasetWriter, LeRobotDataset
from dataset_write import FPS, HEIGHT, WIDTH, make_frames


def build(root: Path, vcodec: str, episodes: int, frames_per_episode: int) -> None:
    frames = make_frames(frames_per_episode)
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": None},
        "observation.images.top": {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "names": None},
        "action": {"dtype": "float32", "shape": [6], "names": None},
    }
    with DatasetWriter.create(root, features=features, fps=FPS, vcodec=vcodec) as w:
        for e in range(episodes):
            for i, frame in enumerate(frames):
                w.add_frame({"observation.state": np.full(6, i, np.float32), "observation.images.top": frame,
                             "action": np.full(6, e, np.float32), "task": "bench"})
            w.save_episode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vcodec", default="libsvtav1")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        build(root, args.vcodec, args.episodes, args.frames)
        deltas = {"action": [i / FPS for i in range(100)]}
        start = time.perf_counter()
        ds = LeRobotDataset(root, delta_timestamps=deltas)
        open_s = time.perf_counter() - start
        order = np.random.default_rng(0).permutation(len(ds))[: args.samples]
        ds[0]
        start = time.perf_counter()
        for i in order:
            ds[int(i)]
        single = len(order) / (time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(len(ds) // 2):
            ds[i]
        sequential = (len(ds) // 2) / (time.perf_counter() - start)
        start = time.perf_counter()
        frames = ds.episode_frames(0, "observation.images.top")
        episode_fps = len(frames) / (time.perf_counter() - start)
        sampler = torch.utils.data.SubsetRandomSampler(order.tolist())
        loader = torch.utils.data.DataLoader(ds, batch_size=8, sampler=sampler, num_workers=2)
        batches = iter(loader)
        next(batches)  # workers started and warm: measure the steady state
        start = time.perf_counter()
        seen = sum(len(batch["index"]) for batch in batches)
        workers = seen / (time.perf_counter() - start)
    print(json.dumps({
        "vcodec": args.vcodec, "camera": f"{WIDTH}x{HEIGHT}", "frames": args.episodes * args.frames,
        "action_window": 100, "open_s": round(open_s, 3),
        "random_access_samples_per_s": round(single, 1), "sequential_samples_per_s": round(sequential, 1),
        "episode_frames_decode_fps": round(episode_fps, 1),
        "dataloader_2_workers_samples_per_s": round(workers, 1),
    }))


if __name__ == "__main__":
    main()
