"""convert-v21 against real lerobot: write a LeRobot v2.1 dataset from its published layout (the test
fixture: 4 episodes, 2 AV1 cameras, 3 tasks; variants with tiny file limits, an H.264 episode, an `image`
feature), convert it with `apprentice dataset convert-v21`, load the
result with lerobot 0.4.4's own LeRobotDataset in another interpreter and compare every sample with the
v2.1 source (parquet rows, frames decoded from the per-episode mp4s). Then convert the same source with
lerobot's own convert_dataset_v21_to_v30 (offline, --push-to-hub false) and compare the two v3.0 results
sample by sample and their metadata. Prints one JSON object.

    python benchmarks/dataset_convert_v21_lerobot.py --lerobot-python /work/lrvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dataset"))  # the v2.1 fixture writer
from dataset_v21 import EPISODES, TASKS, read_v21_episode, write_v21

from apprentice.dataset.convert_v21 import convert_v21

LEROBOT_LOAD = """
import json, sys, warnings, torch
warnings.filterwarnings("ignore")
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, out = sys.argv[1], sys.argv[2]
ds = LeRobotDataset("local/converted", root=root, video_backend="torchcodec")
torch.save({"len": len(ds), "episodes": ds.num_episodes, "samples": [ds[i] for i in range(len(ds))],
            "episode_rows": [dict(r) for r in ds.meta.episodes],
            "stats": {k: {s: torch.as_tensor(v) for s, v in st.items()} for k, st in ds.meta.stats.items()}}, out)
"""
LEROBOT_CONVERT = """
import sys, warnings
warnings.filterwarnings("ignore")
from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset
convert_dataset(repo_id=sys.argv[2], root=sys.argv[1], push_to_hub=False, force_conversion=True)
"""


def lerobot_load(python: str, root: Path, dump: Path) -> dict:
    proc = subprocess.run([python, "-c", LEROBOT_LOAD, str(root), str(dump)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"lerobot failed to load {root}: {proc.stderr.strip().splitlines()[-1]}")
    return torch.load(dump, weights_only=False)


def lerobot_convert(python: str, src: Path, parent: Path) -> Path:
    """lerobot's converter on a copy of `src`; it converts <root>/<repo_id> in place (keeping <repo_id>_old)."""
    root = parent / "local" / "legacy"
    shutil.copytree(src, root)
    proc = subprocess.run([python, "-c", LEROBOT_CONVERT, str(parent), "local/legacy"], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1])
    return root


def compare_with_source(src: Path, theirs: dict) -> dict[str, float | int]:
    """Max abs differences between lerobot's samples of a converted dataset and the v2.1 source."""
    numeric, image, task_mismatch, start = 0.0, 0.0, 0, 0
    for e, (length, _) in enumerate(EPISODES):
        table, frames = read_v21_episode(src, e)
        for i in range(length):
            sample = theirs["samples"][start + i]
            for key in ("action", "observation.state", "timestamp", "frame_index", "episode_index", "index",
                        "task_index", "next.done"):
                want = np.asarray(table.column(key)[i].as_py(), dtype=np.float64)
                numeric = max(numeric, float(np.abs(sample[key].double().numpy() - want).max()))
            for key in frames:
                want = frames[key][i].transpose(2, 0, 1) / 255.0
                image = max(image, float(np.abs(sample[key].double().numpy() - want).max()))
            task_mismatch += sample["task"] != TASKS[int(table.column("task_index")[i].as_py())]
        start += length
    return {"max_abs_diff_numeric": numeric, "max_abs_diff_image": image, "task_mismatches": task_mismatch}


def compare_datasets(a: dict, b: dict) -> dict[str, float | int]:
    """Sample-by-sample and metadata differences between two lerobot loads."""
    diff, mismatches = 0.0, 0
    for x, y in zip(a["samples"], b["samples"]):
        for key, value in x.items():
            if isinstance(value, torch.Tensor):
                diff = max(diff, float((value.double() - y[key].double()).abs().max()) if value.numel() else 0.0)
            else:
                mismatches += value != y[key]
    columns = [c for c in a["episode_rows"][0] if c.startswith(("videos/", "dataset_", "length"))
               and c.endswith(("timestamp", "index", "length"))]
    rows = list(zip(a["episode_rows"], b["episode_rows"]))
    meta = max(abs(float(ra[c]) - float(rb[c])) for ra, rb in rows for c in columns)
    tasks = sum(set(ra["tasks"]) != set(rb["tasks"]) for ra, rb in rows)
    stats = max(float((a["stats"][k][s].double() - b["stats"][k][s].double()).abs().max())
                for k in b["stats"] for s in b["stats"][k] if k in a["stats"] and s in a["stats"][k])
    return {"samples": len(a["samples"]), "max_abs_diff_samples": diff, "string_mismatches": mismatches,
            "max_abs_diff_episode_rows": meta, "episode_task_mismatches": tasks, "max_abs_diff_common_stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lerobot-python", required=True, help="an interpreter that can import lerobot 0.4.4")
    parser.add_argument("--skip-lerobot-converter", action="store_true")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"  # lerobot must read the local roots only
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = write_v21(tmp_path / "v21")
        ours_root = tmp_path / "ours"
        started = time.perf_counter()
        summary = convert_v21(src, ours_root)
        seconds = time.perf_counter() - started
        ours = lerobot_load(args.lerobot_python, ours_root, tmp_path / "ours.pt")
        result: dict = {"lerobot_loaded": True, "samples": ours["len"], "episodes": ours["episodes"],
                        "convert_s": round(seconds, 3), "reencoded": len(summary["reencoded"]),
                        "ours_vs_v21_source": compare_with_source(src, ours)}
        # The same with tiny file limits: several data and video files, still sample-identical in lerobot.
        small_root = tmp_path / "ours_small_files"
        convert_v21(src, small_root, data_files_size_in_mb=0.004, video_files_size_in_mb=0.004)
        small = lerobot_load(args.lerobot_python, small_root, tmp_path / "small.pt")
        result["ours_small_files_vs_v21_source"] = {
            "files": len(list(small_root.rglob("file-*"))), **compare_with_source(src, small)}
        # Episode 2's top camera in H.264 among AV1 episodes (a dataset recorded in two sessions).
        mixed = write_v21(tmp_path / "v21_mixed", video_overrides={2: {"vcodec": "libx264",
                                                                       "options": {"g": "2", "bf": "0"}}})
        convert_v21(mixed, tmp_path / "ours_mixed")
        result["ours_mixed_codecs_vs_v21_source"] = compare_with_source(
            mixed, lerobot_load(args.lerobot_python, tmp_path / "ours_mixed", tmp_path / "mixed.pt"))
        # An `image` feature (PNG cells in the parquet) beside the two video cameras.
        with_images = write_v21(tmp_path / "v21_images", image_feature=True)
        convert_v21(with_images, tmp_path / "ours_images")
        result["ours_image_feature_vs_v21_source"] = compare_with_source(
            with_images, lerobot_load(args.lerobot_python, tmp_path / "ours_images", tmp_path / "images.pt"))
        if not args.skip_lerobot_converter:
            theirs_root = lerobot_convert(args.lerobot_python, src, tmp_path / "lerobot")
            theirs = lerobot_load(args.lerobot_python, theirs_root, tmp_path / "theirs.pt")
            result["lerobot_converter_vs_v21_source"] = compare_with_source(src, theirs)
            result["ours_vs_lerobot_converter"] = compare_datasets(ours, theirs)
            try:
                theirs_root = lerobot_convert(args.lerobot_python, mixed, tmp_path / "lerobot_mixed")
                loaded = lerobot_load(args.lerobot_python, theirs_root, tmp_path / "theirs_mixed.pt")
                result["lerobot_converter_mixed_codecs_vs_v21_source"] = compare_with_source(mixed, loaded)
            except RuntimeError as e:
                result["lerobot_converter_mixed_codecs_vs_v21_source"] = f"failed: {e}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
