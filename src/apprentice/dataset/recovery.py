"""Repair what an interrupted writer left: the dataset becomes exactly its committed episodes.

The writer commits an episode by adding its row to meta/episodes (writer.py). Before that row it may
already have appended the episode's frames to a data parquet and its packets to the camera mp4s;
after it, info.json and stats.json are rewritten. So after a crash: data/video files may carry an
uncommitted tail (trimmed here), a roll-over may have created files no row references (removed), and
info.json/stats.json may lag one episode (recomputed from the rows). The unsaved episode that was
being recorded only ever lived in memory and .staging/, which is cleared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from apprentice.dataset.format import (
    INFO_PATH,
    STAGING_DIR,
    STATS_PATH,
    DatasetError,
    load_info,
    read_parquet,
    write_json_atomic,
    write_parquet_atomic,
)
from apprentice.dataset.metadata import LocalStore, read_episodes, read_tasks, write_tasks
from apprentice.dataset.stats import aggregate_stats, stats_from_row, stats_to_json
from apprentice.dataset.video import VideoSegment, concat_segments, probe_video


def repair(root: str | Path) -> list[str]:
    """Bring `root` back to its committed episodes; returns what was changed (empty when clean)."""
    root = Path(root)
    info = load_info(root)
    actions: list[str] = []
    if (root / STAGING_DIR).exists():
        shutil.rmtree(root / STAGING_DIR)
        actions.append(f"removed unsaved episode scratch {STAGING_DIR}/")
    for tmp in sorted(root.rglob(".tmp-*")):
        tmp.unlink()
        actions.append(f"removed partial write {tmp.relative_to(root)}")
    store = LocalStore(root)
    episodes = read_episodes(store, int(info.get("chunks_size", 1000)))
    if len(episodes) < info["total_episodes"]:
        # Our writer commits rows before info.json, so fewer rows than info.json means lost metadata,
        # not a crash; trimming data to the rows would destroy recorded episodes.
        raise DatasetError(f"{root / 'meta/episodes'}: holds {len(episodes)} episode rows but meta/info.json "
                           f"says {info['total_episodes']}; restore meta/episodes/ from a copy — repair "
                           "will not delete the data of episodes it cannot see")
    actions += _repair_data(root, info, episodes)
    actions += _repair_videos(root, info, episodes)

    tasks = read_tasks(store)
    used = {t for ep in episodes for t in ep["tasks"]}
    unused_tail = 0
    while len(tasks) > unused_tail and tasks[-1 - unused_tail] not in used:
        unused_tail += 1
    if unused_tail:
        # New tasks are written just before their episode's commit; drop those whose episode never landed.
        tasks = tasks[:-unused_tail]
        write_tasks(root, tasks)
        actions.append(f"removed {unused_tail} task(s) of uncommitted episodes from meta/tasks.parquet")
    for ep in episodes:
        missing = [t for t in ep["tasks"] if t not in tasks]
        if missing:
            raise DatasetError(f"{root / 'meta/tasks.parquet'}: tasks {missing} of episode "
                               f"{ep['episode_index']} are missing; cannot repair")
    total_frames = sum(ep["length"] for ep in episodes)
    totals = {"total_episodes": len(episodes), "total_frames": total_frames, "total_tasks": len(tasks),
              "splits": {"train": f"0:{len(episodes)}"} if episodes else {}}
    if any(info.get(k) != v for k, v in totals.items()):
        info.update(totals)
        write_json_atomic(root / INFO_PATH, info)
        actions.append(f"rewrote {INFO_PATH}: {len(episodes)} episodes, {total_frames} frames")
    if episodes and _stats_count(root) != total_frames:
        stats = stats_from_row(episodes[0])
        for ep in episodes[1:]:
            stats = aggregate_stats([stats, stats_from_row(ep)])
        write_json_atomic(root / STATS_PATH, stats_to_json(stats))
        actions.append(f"recomputed {STATS_PATH} from the per-episode stats")
    return actions


def _stats_count(root: Path) -> int | None:
    try:
        stats = json.loads((root / STATS_PATH).read_text())
        return int(stats["index"]["count"][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _repair_data(root: Path, info: dict, episodes: list[dict]) -> list[str]:
    actions = []
    wanted: dict[Path, set[int]] = {}
    for ep in episodes:
        rel = info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
        wanted.setdefault(root / rel, set()).add(ep["episode_index"])
    for path in sorted((root / "data").rglob("*.parquet")):
        if path not in wanted:
            path.unlink()
            actions.append(f"removed {path.relative_to(root)} (no committed episode)")
            continue
        table = read_parquet(path)
        committed = pa.array(sorted(wanted[path]), type=pa.int64())
        if pc.all(pc.is_in(table.column("episode_index"), value_set=committed)).as_py():
            continue
        parquet = pq.ParquetFile(path)
        groups = [parquet.read_row_group(i) for i in range(parquet.num_row_groups)]
        kept = [g.filter(pc.is_in(g.column("episode_index"), value_set=committed)) for g in groups]
        write_parquet_atomic(path, [g for g in kept if g.num_rows] or [table.slice(0, 0)])
        actions.append(f"trimmed {path.relative_to(root)} to its committed episodes")
    for path in wanted:
        if not path.exists():
            raise DatasetError(f"{path}: missing; episodes {sorted(wanted[path])} cannot be recovered — "
                               "restore the file from a copy")
    return actions


def _repair_videos(root: Path, info: dict, episodes: list[dict]) -> list[str]:
    actions = []
    fps = int(info["fps"])
    keys = [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
    for key in keys:
        committed: dict[Path, int] = {}
        for ep in episodes:
            rel = info["video_path"].format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                                            file_index=ep[f"videos/{key}/file_index"])
            frames = int(np.round(ep[f"videos/{key}/to_timestamp"] * fps))
            committed[root / rel] = max(committed.get(root / rel, 0), frames)
        for path in sorted((root / "videos" / key).rglob("*.mp4")):
            if path not in committed:
                path.unlink()
                actions.append(f"removed {path.relative_to(root)} (no committed episode)")
                continue
            found = probe_video(path)["frames"]
            if found > committed[path]:
                concat_segments(path, [VideoSegment(path, 0, committed[path])], fps)
                actions.append(f"trimmed {path.relative_to(root)} from {found} to {committed[path]} frames")
        for path, frames in committed.items():
            if not path.exists():
                raise DatasetError(f"{path}: missing; its episodes cannot be recovered — restore the file")
            if probe_video(path)["frames"] < frames:
                raise DatasetError(f"{path}: holds fewer frames than meta/episodes needs ({frames}); "
                                   "restore the file or re-record those episodes")
    return actions
