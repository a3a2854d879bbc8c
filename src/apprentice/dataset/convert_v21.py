"""Convert a LeRobotDataset v2.1 (one parquet and one mp4 per episode, jsonl metadata) into v3.0.

What lerobot's `convert_dataset_v21_to_v30` (0.4.4) does, through our writer: the episodes' data files
are concatenated in episode order into `data/chunk-*/file-*.parquet`, rolling over at
`data_files_size_in_mb`; each camera's episode mp4s are concatenated packet for packet (no re-encode)
into `videos/<key>/chunk-*/file-*.mp4`, rolling over at `video_files_size_in_mb`; episodes.jsonl +
episodes_stats.jsonl become the `meta/episodes` rows (tasks, length, file positions, `stats/*`);
stats.json is aggregated from the per-episode stats (v2.1's own stats.json is ignored, as lerobot does);
tasks.jsonl becomes tasks.parquet with the same task_index values; info.json keeps its fields, drops
`total_chunks`/`total_videos`, gets the v3.0 path templates and file sizes, and `fps` on every
non-video feature.

Where we differ, on purpose: an episode is placed in the file that actually holds it (lerobot's loop
records the previous file for the episode that triggers a data roll-over); an episode whose codec header
differs from the file being filled starts a new file instead of being appended behind a header that
would decode it wrongly; an episode video whose frames are not at pts i/fps is re-encoded (logged);
numeric features get the q01..q99 quantiles v2.1 never stored, computed from the data. The result is
written beside `--out`, verified, then renamed into place: an interrupted conversion leaves nothing.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from apprentice.dataset.format import (
    DEFAULT_FEATURES,
    INFO_PATH,
    DatasetError,
    read_parquet,
    validate_features,
)
from apprentice.dataset.reader import column_to_numpy
from apprentice.dataset.stats import Stats
from apprentice.dataset.video import vcodec_for
from apprentice.dataset.writer import DatasetWriter, EncodedEpisode

log = logging.getLogger(__name__)

V21 = "v2.1"
EPISODES_JSONL = "meta/episodes.jsonl"
EPISODES_STATS_JSONL = "meta/episodes_stats.jsonl"
TASKS_JSONL = "meta/tasks.jsonl"


@dataclass
class V21Dataset:
    """A v2.1 root's metadata: info.json, episodes.jsonl rows (by episode_index), per-episode stats, tasks."""

    root: Path
    info: dict[str, Any]
    episodes: list[dict[str, Any]]
    stats: list[dict[str, Stats]]
    tasks: list[str]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in self.info["features"].items() if ft["dtype"] == "video"]

    def _chunk(self, episode: int) -> int:
        return episode // int(self.info.get("chunks_size", 1000))

    def data_path(self, episode: int) -> Path:
        return self.root / self.info["data_path"].format(episode_chunk=self._chunk(episode), episode_index=episode)

    def video_path(self, episode: int, key: str) -> Path:
        return self.root / self.info["video_path"].format(episode_chunk=self._chunk(episode), video_key=key,
                                                          episode_index=episode)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing; a v2.1 dataset has meta/info.json, episodes.jsonl, "
                           "episodes_stats.jsonl and tasks.jsonl — restore the file or download the dataset again")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{n}: not valid JSON ({e}); a writer was interrupted here — remove the "
                               "partial line and that episode's files, or restore the file") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{n}: expected a JSON object per line")
        rows.append(row)
    return rows


def _by_index(rows: list[dict[str, Any]], key: str, path: Path) -> list[dict[str, Any]]:
    """Rows sorted by `key`, which must run 0..N-1 (each episode / task exactly once)."""
    try:
        ordered = sorted(rows, key=lambda r: int(r[key]))
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path}: every line needs an integer {key!r}") from None
    found = [int(r[key]) for r in ordered]
    if found != list(range(len(found))):
        missing = sorted(set(range(max(found, default=-1) + 1)) - set(found))
        raise DatasetError(f"{path}: {key} values are not 0..{len(found) - 1} (missing {missing[:5]}, or "
                           "duplicated); restore the file")
    return ordered


def load_v21(root: str | Path) -> V21Dataset:
    """Read and check a v2.1 root's metadata; DatasetError names what is missing or which version it is."""
    root = Path(root)
    info_path = root / INFO_PATH
    if not info_path.is_file():
        raise DatasetError(f"{info_path}: missing; pass the root of a LeRobot v2.1 dataset (it holds meta/info.json)")
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{info_path}: not valid JSON ({e}); restore the file from a copy") from None
    version = info.get("codebase_version")
    if version != V21:
        what = {"v3.0": "already v3.0: load it as it is (`apprentice dataset info`), nothing to convert"}.get(
            version, "convert it to v2.1 first with lerobot 0.3's convert_dataset_v20_to_v21"
            if str(version).startswith(("v1.", "v2.0")) else "not a LeRobot v2.1 dataset")
        raise DatasetError(f"{info_path}: codebase_version is {version!r}, convert-v21 reads 'v2.1'; {what}")
    for key in ("fps", "features", "data_path", "total_episodes"):
        if key not in info:
            raise DatasetError(f"{info_path}: missing key {key!r}; not a complete v2.1 info.json")
    validate_features(info["features"], where=str(info_path))
    tasks = [str(r.get("task")) for r in _by_index(_read_jsonl(root / TASKS_JSONL), "task_index", root / TASKS_JSONL)]
    episodes = _by_index(_read_jsonl(root / EPISODES_JSONL), "episode_index", root / EPISODES_JSONL)
    stats_rows = _by_index(_read_jsonl(root / EPISODES_STATS_JSONL), "episode_index", root / EPISODES_STATS_JSONL)
    if len(episodes) != info["total_episodes"]:
        raise DatasetError(f"{root / EPISODES_JSONL}: holds {len(episodes)} episodes but meta/info.json says "
                           f"{info['total_episodes']}; episode {min(len(episodes), info['total_episodes'])} is "
                           "half-written — delete its files and fix total_episodes, or re-record it")
    if len(stats_rows) != len(episodes):
        raise DatasetError(f"{root / EPISODES_STATS_JSONL}: holds stats of {len(stats_rows)} episodes, "
                           f"episodes.jsonl lists {len(episodes)}; episode {min(len(stats_rows), len(episodes))} "
                           "is half-written")
    stats = [{k: {s: np.asarray(v) for s, v in ft.items()} for k, ft in row.get("stats", {}).items()}
             for row in stats_rows]
    _refuse_uncommitted(root, len(episodes))
    return V21Dataset(root, info, episodes, stats, tasks)


def _refuse_uncommitted(root: Path, num_episodes: int) -> None:
    """lerobot 0.3 writes an episode's parquet and mp4s before its jsonl rows: files of an episode past the
    last row are what an interrupted recording left, and converting around them would hide that."""
    for path in sorted([*root.glob("data/*/episode_*.parquet"), *root.glob("videos/*/*/episode_*.mp4")]):
        match = re.fullmatch(r"episode_(\d+)", path.stem)
        if match and int(match.group(1)) >= num_episodes:
            raise DatasetError(f"{path}: episode {int(match.group(1))} has files but no row in meta/episodes.jsonl "
                               "(its recording was interrupted: half-written); delete that episode's data and "
                               f"video files to convert the {num_episodes} complete episodes")


def v30_info_fields(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per feature, the info.json fields the converted dataset carries over from v2.1 (lerobot's convert_info):
    a video's `info` block as recorded, `fps` on every other feature."""
    fps = int(info["fps"])
    return {k: {"info": ft["info"]} if ft["dtype"] == "video" and ft.get("info") else
            ({} if ft["dtype"] == "video" else {"fps": fps}) for k, ft in info["features"].items()}


def _frame_ticks(stream: Any, fps: int) -> Fraction:
    return Fraction(1, fps) / stream.time_base


def _needs_reencode(path: Path, length: int, fps: int, episode: int, key: str) -> bool:
    """Check an episode mp4 holds `length` frames; True when they are not at pts i/fps (packets could not
    be placed on the v3.0 file's frame grid by a shift)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
            ticks = _frame_ticks(stream, fps)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; episode {episode} of camera {key!r} is half-written — restore the "
                           "file or download the dataset again") from None
    except (IndexError, av.FFmpegError, OSError) as e:
        raise DatasetError(f"{path}: unreadable video ({e or 'no video stream'}); episode {episode} is "
                           "half-written or corrupt — restore the file") from None
    if len(pts) != length:
        raise DatasetError(f"{path}: holds {len(pts)} frames but episode {episode} has {length}; the episode is "
                           "half-written — restore the file or re-record the episode")
    return ticks.denominator != 1 or pts != [i * int(ticks) for i in range(length)]


def _episode(source: V21Dataset, e: int, writer: DatasetWriter, notes: list[str]) -> EncodedEpisode:
    """One v2.1 episode as the writer's input, checked against episodes.jsonl."""
    meta = source.episodes[e]
    length = int(meta.get("length", -1))
    path = source.data_path(e)
    if not path.is_file():
        raise DatasetError(f"{path}: missing; episode {e} is half-written — restore the file or download the "
                           "dataset again")
    table = read_parquet(path)
    where = str(path)
    if table.num_rows != length:
        raise DatasetError(f"{path}: holds {table.num_rows} frames but meta/episodes.jsonl says episode {e} has "
                           f"{length}; the episode is half-written — restore it or re-record it")
    features = writer.info["features"]
    missing = [k for k, ft in features.items() if ft["dtype"] != "video" and k not in table.column_names]
    if missing:
        raise DatasetError(f"{path}: column(s) {missing} declared in meta/info.json are missing")
    columns = {k: column_to_numpy(table.column(k), features[k]["shape"], where) for k in features
               if features[k]["dtype"] not in ("video", "image")}
    for key in writer.image_keys:  # {bytes, path} cells as they are: PNG bytes are copied, never decoded
        columns[key] = np.array(table.column(key).combine_chunks().to_pylist(), dtype=object)
    if not np.array_equal(columns["episode_index"], np.full(length, e)) or not np.array_equal(
            columns["frame_index"], np.arange(length)):
        raise DatasetError(f"{path}: episode_index/frame_index are not {e} / 0..{length - 1}; the file belongs to "
                           "another episode or is damaged")
    task_index = columns["task_index"]
    if length and (task_index.min() < 0 or task_index.max() >= len(source.tasks)):
        raise DatasetError(f"{path}: task_index {int(task_index.max())} is not in meta/tasks.jsonl "
                           f"({len(source.tasks)} tasks)")
    videos: dict[str, Path] = {}
    for key in source.video_keys:
        video = source.video_path(e, key)
        if _needs_reencode(video, length, writer.fps, e, key):
            with av.open(str(video)) as container:
                video = writer.encode_video(key, (f.to_ndarray(format="rgb24") for f in container.decode(video=0)))
            codec = writer.info["features"][key]["info"]["video.codec"]
            notes.append(f"episode {e} {key}: frames not at pts i/fps, re-encoded with {vcodec_for(codec, key)}")
            log.warning("%s: %s", source.root, notes[-1])
        videos[key] = video
    return EncodedEpisode(columns={k: v for k, v in columns.items() if k not in DEFAULT_FEATURES},
                          timestamps=columns["timestamp"], frame_tasks=[source.tasks[i] for i in task_index],
                          videos=videos, stats=source.stats[e])


def convert_v21(src: str | Path, out: str | Path, *, data_files_size_in_mb: float = 100,
                video_files_size_in_mb: float = 200) -> dict[str, Any]:
    """Convert the v2.1 dataset at `src` into a new v3.0 dataset at `out` (must not exist); returns a summary."""
    from apprentice.dataset.verify import verify

    src, out = Path(src), Path(out)
    source = load_v21(src)
    if out.exists():
        raise DatasetError(f"{out}: already exists; pass a new --out (the source is never modified)")
    work = out.with_name(f".{out.name}.converting")
    shutil.rmtree(work, ignore_errors=True)  # what an interrupted conversion left; never a dataset
    features = {k: ft for k, ft in source.info["features"].items() if k not in DEFAULT_FEATURES}
    codecs = {(ft.get("info") or {}).get("video.codec") for ft in features.values() if ft["dtype"] == "video"}
    vcodec = "h264" if codecs == {"h264"} else "libsvtav1"  # for cameras whose v2.1 info names no codec
    notes: list[str] = []
    writer: DatasetWriter | None = None
    try:
        writer = DatasetWriter.create(work, features=features, fps=int(source.info["fps"]),
                                      robot_type=source.info.get("robot_type"), vcodec=vcodec,
                                      chunks_size=int(source.info.get("chunks_size", 1000)),
                                      data_files_size_in_mb=data_files_size_in_mb,
                                      video_files_size_in_mb=video_files_size_in_mb)
        for key, fields in v30_info_fields(source.info).items():
            writer.info["features"][key].update(fields)
        writer.add_tasks(source.tasks)
        # The writer takes the episodes in batches of about one data / video file: memory stays bounded.
        writer.save_encoded_episodes(_episode(source, e, writer, notes) for e in range(len(source.episodes)))
        writer.finalize()
        summary = verify(work)
    except BaseException:
        if writer is not None:
            writer.finalize()
        shutil.rmtree(work, ignore_errors=True)
        raise
    work.rename(out)
    summary["root"] = str(out)
    summary["reencoded"] = notes
    return summary


def convert_v21_from_hub(repo_id: str, out: str | Path, *, download_dir: str | Path | None = None,
                         revision: str | None = None, **sizes: float) -> dict[str, Any]:
    """Pull a Hub dataset's v2.1 revision (default: the "v2.1" tag) and convert it into `out`."""
    from apprentice.dataset.hub import default_root, pull

    where = Path(download_dir) if download_dir else default_root(repo_id).with_name(
        f"{default_root(repo_id).name}_v21")
    root = pull(repo_id, root=where, revision=revision, codebase_version=V21)
    return convert_v21(root, out, **sizes)
