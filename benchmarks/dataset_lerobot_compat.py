"""Interchangeability check against real lerobot: write a dataset with our writer (AV1 video, string
feature, roll-overs into several data/video/meta files), load it with lerobot's own LeRobotDataset in
another interpreter, and compare every sample and the stats with our reader. Prints one JSON object.

    python benchmarks/dataset_lerobot_compat.py --lerobot-python /path/to/venv-with-lerobot/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from apprentice.dataset import DatasetWriter, LeRobotDataset

DELTAS = {"action": [-1 / 30, 0.0, 1 / 30, 2 / 30]}
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "observation.images.top": {"dtype": "video", "shape": [96, 128, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "language.note": {"dtype": "string", "shape": [1], "names": None},
}
LEROBOT_SIDE = """
import json, sys, warnings, torch
warnings.filterwarnings("ignore")
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, out, deltas, backend = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
ds = LeRobotDataset("local/compat", root=root, video_backend=backend, delta_timestamps=deltas)
samples = [ds[i] for i in range(len(ds))]
torch.save({"len": len(ds), "episodes": ds.num_episodes,
            "samples": [{k: v for k, v in s.items()} for s in samples],
            "stats": {k: {s: torch.as_tensor(v) for s, v in st.items()} for k, st in ds.meta.stats.items()}}, out)
"""


def write(root: Path) -> None:
    rng = np.random.default_rng(0)
    with DatasetWriter.create(root, features=FEATURES, fps=30, robot_type="so101_follower",
                              data_files_size_in_mb=0.01, video_files_size_in_mb=0.05) as w:
        for e, length in enumerate([40, 25, 33, 18]):
            for i in range(length):
                image = np.zeros((96, 128, 3), np.uint8)
                image[..., 0], image[..., 1] = (7 * i) % 256, 60 * e
                image[20:50, 30 + i:70 + i, 2] = 220
                w.add_frame({"observation.state": rng.normal(size=6).astype(np.float32),
                             "observation.images.top": image, "action": rng.normal(size=6).astype(np.float32),
                             "language.note": f"e{e} i{i}"})
            w.save_episode(task=["pick the cube", "place the cube"][e % 2])


def compare(ours: LeRobotDataset, theirs: dict) -> dict:
    """Largest differences between our reader's samples/stats and those lerobot returned."""
    max_num, max_img, strings = 0.0, 0.0, 0
    for i, want in enumerate(theirs["samples"]):
        got = ours[i]
        for key, value in want.items():
            if isinstance(value, str):
                strings += got[key] != value
                continue
            if not isinstance(value, torch.Tensor):
                continue
            diff = float((got[key].double() - value.double()).abs().max()) if value.numel() else 0.0
            if key.startswith("observation.images"):
                max_img = max(max_img, diff)
            else:
                max_num = max(max_num, diff)
    stats = max(float(np.abs(ours.meta.stats[k][s] - theirs["stats"][k][s].numpy()).max())
                for k in theirs["stats"] for s in theirs["stats"][k])
    return {"samples": theirs["len"], "episodes": theirs["episodes"], "max_abs_diff_numeric": max_num,
            "max_abs_diff_image": max_img, "string_mismatches": strings, "max_abs_diff_stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lerobot-python", required=True, help="an interpreter that can import lerobot")
    parser.add_argument("--video-backend", default="torchcodec",
                        help="lerobot's decoder: torchcodec, or pyav (needs a torchvision with io.VideoReader)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, dump = Path(tmp) / "ds", Path(tmp) / "lerobot.pt"
        write(root)
        proc = subprocess.run([args.lerobot_python, "-c", LEROBOT_SIDE, str(root), str(dump), json.dumps(DELTAS),
                               args.video_backend],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"lerobot failed to load our dataset:\n{proc.stderr[-3000:]}")
        theirs = torch.load(dump, weights_only=False)
        ours = LeRobotDataset(root, delta_timestamps=DELTAS)
        files = {p.parent.parent.name + "/" + p.name for p in root.rglob("file-*")}
        result = compare(ours, theirs)
    print(json.dumps({"lerobot_loaded": True, "files": len(files), **result}))


if __name__ == "__main__":
    main()
