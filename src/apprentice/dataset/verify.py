"""Check every invariant of a v3.0 dataset and name the first violation (file, episode, what to do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from apprentice.dataset.format import (
    STATS_PATH,
    TIMESTAMP_TOLERANCE_S,
    DatasetError,
    check_data_schema,
    read_parquet,
)
from apprentice.dataset.metadata import DatasetMeta, LocalStore
from apprentice.dataset.reader import column_to_numpy
from apprentice.dataset.stats import QUANTILE_KEYS, STAT_KEYS
from apprentice.dataset.video import probe_video


def verify(root: str | Path) -> dict[str, Any]:
    """Raise DatasetError at the first broken invariant; return a summary of what was checked."""
    root = Path(root)
    meta = DatasetMeta.load(LocalStore(root))
    fps = meta.fps
    episodes = meta.episodes
    _check_episode_table(root, meta)
    files = 0
    for rel in dict.fromkeys(meta.episode_data_rel(ep) for ep in episodes):
        _check_data_file(root, meta, rel)
        files += 1
    for key in meta.video_keys:
        probes: dict[str, dict[str, Any]] = {}
        for ep in episodes:
            rel = meta.episode_video_rel(ep, key)
            if rel not in probes:
                probes[rel] = probe_video(root / rel)
                files += 1
                height, width, _ = meta.features[key]["shape"]
                if (probes[rel]["height"], probes[rel]["width"]) != (height, width):
                    raise DatasetError(f"{root / rel}: frames are {probes[rel]['width']}x{probes[rel]['height']}, "
                                       f"meta/info.json declares {width}x{height} for {key!r}")
            start, end = ep[f"videos/{key}/from_timestamp"], ep[f"videos/{key}/to_timestamp"]
            if abs((end - start) - ep["length"] / fps) > TIMESTAMP_TOLERANCE_S:
                raise DatasetError(f"meta/episodes: episode {ep['episode_index']} spans {end - start:.4f} s of "
                                   f"{key!r} but has {ep['length']} frames at {fps} fps")
            if probes[rel]["end_s"] + TIMESTAMP_TOLERANCE_S < end:
                raise DatasetError(f"{root / rel}: video ends at {probes[rel]['end_s']:.4f} s but episode "
                                   f"{ep['episode_index']} needs frames until {end:.4f} s; the file is "
                                   "truncated — restore it or re-record the episode")
    _check_stats(root, meta)
    return {"root": str(root), "episodes": len(episodes), "frames": meta.total_frames,
            "tasks": len(meta.tasks), "files_checked": files}


def _check_episode_table(root: Path, meta: DatasetMeta) -> None:
    expected_from = 0
    for ep in meta.episodes:
        e = ep["episode_index"]
        if ep["dataset_from_index"] != expected_from:
            raise DatasetError(f"{root / 'meta/episodes'}: episode {e} starts at index {ep['dataset_from_index']}, "
                               f"expected {expected_from} (indices must be contiguous)")
        if ep["dataset_to_index"] - ep["dataset_from_index"] != ep["length"]:
            raise DatasetError(f"{root / 'meta/episodes'}: episode {e} has length {ep['length']} but index range "
                               f"{ep['dataset_from_index']}..{ep['dataset_to_index']}")
        missing = [t for t in ep["tasks"] if t not in meta.tasks]
        if missing:
            raise DatasetError(f"{root / 'meta/tasks.parquet'}: episode {e} uses tasks {missing} not in the table")
        expected_from = ep["dataset_to_index"]
    info = meta.info
    if (info["total_episodes"], info["total_frames"]) != (len(meta.episodes), expected_from):
        raise DatasetError(f"{root / 'meta/info.json'}: says {info['total_episodes']} episodes / "
                           f"{info['total_frames']} frames but meta/episodes holds {len(meta.episodes)} / "
                           f"{expected_from}; run `apprentice dataset repair` (an interrupted writer)")
    if info.get("total_tasks") != len(meta.tasks):
        raise DatasetError(f"{root / 'meta/info.json'}: total_tasks is {info.get('total_tasks')} but "
                           f"meta/tasks.parquet holds {len(meta.tasks)}; run `apprentice dataset repair`")


def _check_data_file(root: Path, meta: DatasetMeta, rel: str) -> None:
    path = root / rel
    table = read_parquet(path)
    numeric = {k: ft for k, ft in meta.features.items() if ft["dtype"] not in ("video", "image")}
    check_data_schema(path, table.schema, numeric)
    cols = {k: column_to_numpy(table.column(k), [1], str(path))
            for k in ("index", "frame_index", "episode_index", "timestamp", "task_index")}
    for k, ft in numeric.items():
        if ft["dtype"] != "string":
            column_to_numpy(table.column(k), ft["shape"], f"{path} column {k!r}")
    committed = {ep["episode_index"] for ep in meta.episodes if meta.episode_data_rel(ep) == rel}
    stray = sorted(set(np.unique(cols["episode_index"]).tolist()) - committed)
    if stray:
        # lerobot loads every row of a data file: rows of an episode that never reached meta/episodes
        # (a writer killed between the two) would shift its totals and point at a missing episode.
        raise DatasetError(f"{path}: holds {int(np.isin(cols['episode_index'], stray).sum())} rows of episode(s) "
                           f"{stray} that meta/episodes does not list (an interrupted save); "
                           "run `apprentice dataset repair`")
    for ep in meta.episodes:
        if meta.episode_data_rel(ep) != rel:
            continue
        e = ep["episode_index"]
        rows = np.flatnonzero(cols["episode_index"] == e)
        index = np.sort(cols["index"][rows])
        if not np.array_equal(index, np.arange(ep["dataset_from_index"], ep["dataset_to_index"])):
            raise DatasetError(f"{path}: episode {e} has {len(rows)} rows with index not equal to "
                               f"{ep['dataset_from_index']}..{ep['dataset_to_index'] - 1}")
        rows = rows[np.argsort(cols["index"][rows])]
        frame_index = cols["frame_index"][rows]
        if not np.array_equal(frame_index, np.arange(ep["length"])):
            raise DatasetError(f"{path}: episode {e} frame_index is not 0..{ep['length'] - 1}")
        drift = np.abs(cols["timestamp"][rows] - frame_index / meta.fps)
        if np.any(drift > TIMESTAMP_TOLERANCE_S):
            bad = int(np.argmax(drift))
            raise DatasetError(f"{path}: episode {e} frame {bad} has timestamp {cols['timestamp'][rows][bad]:.6f}, "
                               f"expected frame_index/fps = {bad / meta.fps:.6f}")
        if np.any(cols["task_index"][rows] >= len(meta.tasks)) or np.any(cols["task_index"][rows] < 0):
            raise DatasetError(f"{path}: episode {e} has a task_index outside meta/tasks.parquet")


def _check_stats(root: Path, meta: DatasetMeta) -> None:
    for key, ft in meta.features.items():
        if ft["dtype"] == "string":
            continue
        stats = meta.stats.get(key)
        if stats is None:
            raise DatasetError(f"{root / STATS_PATH}: no stats for feature {key!r}; run `apprentice dataset repair`")
        # Quantiles are all or none: datasets lerobot converted from v2.1 carry none (lerobot loads them;
        # only QUANTILES normalisation needs them).
        required = STAT_KEYS if any(q in stats for q in QUANTILE_KEYS) else ("min", "max", "mean", "std", "count")
        missing = [s for s in required if s not in stats]
        if missing:
            raise DatasetError(f"{root / STATS_PATH}: feature {key!r} lacks {missing}")
        if ft["dtype"] in ("video", "image") and np.shape(stats["mean"]) != (3, 1, 1):
            raise DatasetError(f"{root / STATS_PATH}: image stats of {key!r} must have shape (3, 1, 1), got "
                               f"{np.shape(stats['mean'])}")
        # Image stats count the sampled frames (~100 per episode), so only numeric counts are checked.
        visual = ft["dtype"] in ("video", "image")
        if not visual and int(np.asarray(stats["count"]).ravel()[0]) != meta.total_frames:
            raise DatasetError(f"{root / STATS_PATH}: {key!r} count is {stats['count']} but the dataset has "
                               f"{meta.total_frames} frames; run `apprentice dataset repair`")
        for ep in meta.episodes:
            if f"stats/{key}/mean" not in ep:
                raise DatasetError(f"{root / 'meta/episodes'}: episode {ep['episode_index']} has no "
                                   f"stats/{key}/* columns")
