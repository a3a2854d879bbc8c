"""Real lerobot loads what every `apprentice dataset` edit writes: run each edit operation on a dataset our
writer recorded (AV1, a string feature, roll-overs into several files), load every output with lerobot
0.4.4's LeRobotDataset in another interpreter, and compare each sample and the stats with our reader.
Prints one JSON object (per operation: samples, episodes, max |diff| numeric/image, string mismatches,
stats diff, seconds the edit took).

    python benchmarks/dataset_edit_lerobot_compat.py --lerobot-python /work/lrvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from apprentice.dataset import DatasetWriter, LeRobotDataset, edit
from apprentice.dataset.writer import EncodedEpisode
from dataset_lerobot_compat import DELTAS, compare, write

LEROBOT_SIDE = """
import json, sys, warnings, torch
warnings.filterwarnings("ignore")
from lerobot.datasets.lerobot_dataset import LeRobotDataset
roots, out, deltas, backend = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
dump = {}
for name, root in roots.items():
    ds = LeRobotDataset("local/" + name, root=root, video_backend=backend, delta_timestamps=deltas)
    dump[name] = {"len": len(ds), "episodes": ds.num_episodes, "samples": [ds[i] for i in range(len(ds))],
                  "tasks": list(ds.meta.tasks.index),
                  "stats": {k: {s: torch.as_tensor(v) for s, v in st.items()} for k, st in ds.meta.stats.items()}}
torch.save(dump, out)
"""


def image_dataset(src: Path, root: Path) -> Path:
    """`src` with its camera stored as PNG cells in parquet (lerobot's `image` dtype)."""
    ours = LeRobotDataset(src)
    key = ours.meta.video_keys[0]
    features = {**ours.features, key: {"dtype": "image", "shape": ours.features[key]["shape"],
                                       "names": ["height", "width", "channels"]}}
    source = edit.Source(src)
    with DatasetWriter.create(root, features=features, fps=ours.fps, robot_type=ours.meta.info["robot_type"]) as w:
        for e in range(ours.num_episodes):
            rows = ours.column("episode_index") == e
            cells = []
            for frame in ours.episode_frames(e, key):
                encoder = av.CodecContext.create("png", "w")
                encoder.width, encoder.height, encoder.pix_fmt = frame.shape[1], frame.shape[0], "rgb24"
                packets = encoder.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
                cells.append({"bytes": b"".join(bytes(p) for p in packets), "path": None})
            columns = {k: ours.column(k)[rows] for k in w.features if k != key}
            columns[key] = np.array(cells, dtype=object)
            w.save_encoded_episodes([EncodedEpisode(columns, np.arange(rows.sum()) / ours.fps,
                                                    source.frame_tasks(source.rows(e)), stats=source.visual_stats(e))])
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lerobot-python", required=True, help="an interpreter that can import lerobot")
    parser.add_argument("--video-backend", default="torchcodec",
                        help="lerobot's decoder: torchcodec, or pyav (needs a torchvision with io.VideoReader)")
    parser.add_argument("--lerobot-ref", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared"
                        / "data" / "lerobot_ref", help="a dataset lerobot wrote, edited too when present")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        src, other = t / "src", t / "other"
        write(src)
        write(other)
        ops = {
            "delete-episodes": lambda: edit.delete_episodes(src, [1, 2], out=t / "deleted"),
            "split": lambda: edit.split_dataset(src, {"train": 0.75, "val": 0.25}, out=t / "split")["val"],
            "merge": lambda: edit.merge_datasets([src, other], out=t / "merged"),
            "remove-feature": lambda: edit.remove_feature(src, ["language.note"], out=t / "removed"),
            "remove-camera": lambda: edit.remove_feature(src, ["observation.images.top"], out=t / "no_camera"),
            "modify-tasks": lambda: edit.modify_tasks(src, replacements={"pick the cube": "lift the cube"},
                                                      episode_tasks={3: "wave"}, out=t / "tasks"),
            "recompute-stats": lambda: edit.recompute_stats(src, images=True, out=t / "stats"),
            "reencode-videos": lambda: edit.reencode_videos(src, vcodec="h264", crf=18, gop=4, out=t / "h264"),
            "image-dataset (writer)": lambda: image_dataset(src, t / "images"),
            "convert-to-video": lambda: edit.convert_image_to_video(t / "images", out=t / "video"),
        }
        if args.lerobot_ref.is_dir():
            ref = args.lerobot_ref
            ops["lerobot_ref delete-episodes"] = lambda: edit.delete_episodes(ref, [0], out=t / "ref_deleted")
            ops["lerobot_ref merge"] = lambda: edit.merge_datasets([ref, ref], out=t / "ref_merged")
        roots, seconds = {}, {}
        for name, op in ops.items():
            start = time.perf_counter()
            roots[name] = str(op())
            seconds[name] = round(time.perf_counter() - start, 3)
        dump = t / "lerobot.pt"
        names = {f"op{i}": root for i, root in enumerate(roots.values())}  # repo ids without spaces
        proc = subprocess.run([args.lerobot_python, "-c", LEROBOT_SIDE, json.dumps(names), str(dump),
                               json.dumps(DELTAS), args.video_backend], capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"lerobot failed to load an edited dataset:\n{proc.stderr[-3000:]}")
        theirs = torch.load(dump, weights_only=False)
        results = {}
        for i, name in enumerate(ops):
            ours = LeRobotDataset(roots[name], delta_timestamps=DELTAS)
            results[name] = {"lerobot_loaded": True, **compare(ours, theirs[f"op{i}"]),
                             "same_tasks": theirs[f"op{i}"]["tasks"] == ours.meta.tasks, "edit_s": seconds[name]}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
