"""Dataset editing as lerobot-edit-dataset does: delete episodes, split, merge, remove a feature, modify
tasks, recompute stats, re-encode videos, convert image columns to video.

Every operation reads its source(s), writes a complete new root through DatasetWriter's whole-episode
path (`save_encoded_episodes`) beside the destination, verifies it, and only then renames it into place
(output.py) — so an edit killed at any point leaves every source as it was. Video is copied packet for
packet straight from the source's slice of a file (no staging copy) wherever the episode boundaries allow;
only re-encoding and image conversion decode frames.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from apprentice.dataset.format import (
    DEFAULT_FEATURES,
    TIMESTAMP_TOLERANCE_S,
    DatasetError,
    read_parquet,
    video_feature_info,
)
from apprentice.dataset.metadata import DatasetMeta, LocalStore
from apprentice.dataset.output import EditOutput
from apprentice.dataset.reader import column_to_numpy, decode_image
from apprentice.dataset.stats import Stats, downsample, image_stats, sample_indices, stats_from_row
from apprentice.dataset.video import VideoReader, VideoSegment, codec_names
from apprentice.dataset.writer import DatasetWriter, EncodedEpisode

VideoSource = VideoSegment | Iterable[np.ndarray]


class Source:
    """A dataset being read by an edit: its metadata and its episodes' rows, one data file cached at a time."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.meta = DatasetMeta.load(LocalStore(self.root))
        self._cached: tuple[str, pa.Table] | None = None

    @property
    def visual_keys(self) -> list[str]:
        return self.meta.camera_keys

    def rows(self, episode: int) -> pa.Table:
        """The episode's data rows in frame order."""
        rel = self.meta.episode_data_rel(self.meta.episodes[episode])
        if self._cached is None or self._cached[0] != rel:
            self._cached = (rel, read_parquet(self.root / rel))
        table = self._cached[1]
        rows = table.filter(pc.equal(table.column("episode_index"), episode))
        rows = rows.take(pc.sort_indices(rows.column("index")))
        if rows.num_rows != self.meta.episodes[episode]["length"]:
            raise DatasetError(f"{self.root / rel}: episode {episode} has {rows.num_rows} rows, meta/episodes says "
                               f"{self.meta.episodes[episode]['length']}; run `apprentice dataset verify`")
        frame_index = rows.column("frame_index").to_numpy()
        timestamps = rows.column("timestamp").to_numpy().astype(np.float64)
        if not np.array_equal(frame_index, np.arange(rows.num_rows)) or np.any(
                np.abs(timestamps - frame_index / self.meta.fps) > TIMESTAMP_TOLERANCE_S):
            raise DatasetError(f"{self.root / rel}: episode {episode} rows are not frames 0..{rows.num_rows - 1} "
                               "at frame_index/fps; run `apprentice dataset verify`")
        return rows

    def frame_tasks(self, rows: pa.Table) -> list[str]:
        return [self.meta.tasks[i] for i in rows.column("task_index").to_pylist()]

    def segment(self, episode: int, key: str) -> VideoSegment:
        ep = self.meta.episodes[episode]
        start = round(ep[f"videos/{key}/from_timestamp"] * self.meta.fps)
        return VideoSegment(self.root / self.meta.episode_video_rel(ep, key), start, start + int(ep["length"]))

    def frames(self, episode: int, key: str, rows: pa.Table, indices: Sequence[int] | None = None
               ) -> Iterator[np.ndarray]:
        """HWC uint8 frames of one camera (video decoded forward, or the image column's PNG/JPEG cells)."""
        indices = range(rows.num_rows) if indices is None else indices
        if self.meta.features[key]["dtype"] == "image":
            cells = pc.struct_field(rows.column(key), "bytes").to_pylist()
            for i in indices:
                yield decode_image(cells[i], key)
            return
        segment = self.segment(episode, key)
        reader = VideoReader(segment.path)
        try:
            for i in indices:
                yield reader.frame_at((segment.start + i) / self.meta.fps)
        finally:
            reader.close()

    def visual_stats(self, episode: int) -> dict[str, Stats]:
        stats = stats_from_row(self.meta.episodes[episode])
        missing = [k for k in self.visual_keys if k not in stats]
        if missing:
            raise DatasetError(f"{self.root / 'meta/episodes'}: episode {episode} has no stats for {missing}; "
                               "run `apprentice dataset recompute-stats --images`")
        return {k: stats[k] for k in self.visual_keys}


FrameTasks = Callable[[Source, int, list[str]], list[str]]
Videos = Callable[[Source, int, str, pa.Table], VideoSource]
VisualStats = Callable[[Source, int, pa.Table], dict[str, Stats]]


def _build(root: Path, episodes: Sequence[tuple[Source, int]], *, features: Mapping[str, Any] | None = None,
           frame_tasks: FrameTasks | None = None, videos: Videos | None = None,
           visual_stats: VisualStats | None = None, gop: int = 2, crf: int = 30,
           preset: int | None = None) -> None:
    """Write `episodes` (source, episode) in order as a new dataset at `root`; the callbacks change what
    differs from a plain copy (tasks, camera content, camera stats)."""
    first = episodes[0][0]
    info = first.meta.info
    features = dict(features if features is not None else info["features"])
    with DatasetWriter.create(root, features=features, fps=first.meta.fps, robot_type=info.get("robot_type"),
                              chunks_size=int(info.get("chunks_size", 1000)),
                              data_files_size_in_mb=info.get("data_files_size_in_mb", 100),
                              video_files_size_in_mb=info.get("video_files_size_in_mb", 200),
                              gop=gop, crf=crf, preset=preset) as writer:
        writer.save_encoded_episodes(_episode(writer, source, e, frame_tasks, videos, visual_stats)
                                     for source, e in episodes)


def _episode(writer: DatasetWriter, source: Source, e: int, frame_tasks: FrameTasks | None, videos: Videos | None,
             visual_stats: VisualStats | None) -> EncodedEpisode:
    """Episode `e` of `source` as the writer's input: its feature columns, a segment of the source's mp4 per
    camera (or the camera's frames, encoded), and its camera stats; the writer computes the numeric stats."""
    rows = source.rows(e)
    tasks = source.frame_tasks(rows)
    stats = visual_stats(source, e, rows) if visual_stats else source.visual_stats(e)
    cameras: dict[str, Path | VideoSegment] = {}
    for key in writer.video_keys:
        video = videos(source, e, key, rows) if videos else source.segment(e, key)
        cameras[key] = video if isinstance(video, VideoSegment) else writer.encode_video(key, video)
    columns = {}
    for key, ft in writer.features.items():
        if ft["dtype"] == "image":  # {bytes, path} cells as they are: never decoded
            columns[key] = np.array(rows.column(key).to_pylist(), dtype=object)
        elif ft["dtype"] != "video":
            columns[key] = column_to_numpy(rows.column(key), ft["shape"], f"{source.root} column {key!r}")
    # Timestamps are frame_index/fps (checked by Source.rows): the writer (and lerobot) take the stats from
    # these float64 values, not from the float32 stored ones, whose quantiles lie ~3e-5 s apart.
    return EncodedEpisode(columns, timestamps=np.arange(rows.num_rows) / source.meta.fps,
                          frame_tasks=frame_tasks(source, e, tasks) if frame_tasks else tasks, videos=cameras,
                          stats={k: stats[k] for k in [*writer.video_keys, *writer.image_keys]})


def _rewrite(source: Source, out: str | Path | None, in_place: bool, **build: Any) -> Path:
    """Write every episode of `source`, changed as `build` says (see _build), to `out` or in place."""
    output = EditOutput(out, [source.root], in_place)
    with output as tmp:
        _build(tmp, [(source, e) for e in range(source.meta.total_episodes)], **build)
    return output.dst


def _check_episodes(source: Source, episodes: Iterable[int], what: str) -> list[int]:
    episodes = list(episodes)
    bad = sorted({e for e in episodes if not 0 <= e < source.meta.total_episodes})
    if bad:
        raise DatasetError(f"{what}: episodes {bad} are not in {source.root} (it has episodes "
                           f"0..{source.meta.total_episodes - 1})")
    return episodes


# ---------------------------------------------------------------- operations
def delete_episodes(src: str | Path, episodes: Iterable[int], *, out: str | Path | None = None,
                    in_place: bool = False) -> Path:
    """Drop `episodes`; the rest are renumbered 0..N-1 in their order, as lerobot does."""
    source = Source(src)
    drop = set(_check_episodes(source, episodes, "--episodes"))
    if not drop:
        raise DatasetError("--episodes: name at least one episode to delete")
    keep = [e for e in range(source.meta.total_episodes) if e not in drop]
    if not keep:
        raise DatasetError(f"--episodes: that deletes every episode of {source.root}; a dataset needs one")
    output = EditOutput(out, [source.root], in_place)
    with output as tmp:
        _build(tmp, [(source, e) for e in keep])
    return output.dst


def parse_episode_list(text: str) -> list[int]:
    """'3', '0-39' (inclusive) or a comma list of both: '0,2,10-19'."""
    episodes: list[int] = []
    for part in filter(None, text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not match:
            raise DatasetError(f"episode list {text!r}: {part!r} is neither N nor N-M")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise DatasetError(f"episode list {text!r}: range {part!r} runs backwards")
        episodes += range(first, last + 1)
    if not episodes:
        raise DatasetError(f"episode list {text!r} is empty")
    return episodes


def parse_splits(specs: Sequence[str]) -> dict[str, float | list[int]]:
    """NAME=FRACTION (a number with a '.', e.g. train=0.8) or NAME=EPISODES (e.g. val=40-49, test=1,5,7-9)."""
    splits: dict[str, float | list[int]] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise DatasetError(f"--splits {spec!r}: write NAME=0.8 or NAME=0-39 (NAME: letters, digits, _ . -)")
        if name in splits:
            raise DatasetError(f"--splits: split {name!r} is given twice")
        if re.fullmatch(r"\d*\.\d+|\d+\.\d*", value):
            splits[name] = float(value)
        else:
            splits[name] = parse_episode_list(value)
    if not splits:
        raise DatasetError("--splits: give at least one NAME=FRACTION or NAME=EPISODES")
    return splits


def resolve_splits(splits: Mapping[str, float | list[int]], total: int) -> dict[str, list[int]]:
    """Fractions -> consecutive episode ranges, lerobot's rule: each split gets int(total * fraction)
    episodes in order, and when the fractions sum to 1 the last one also takes the rounding remainder."""
    fractions = [v for v in splits.values() if isinstance(v, float)]
    if fractions and len(fractions) != len(splits):
        raise DatasetError("--splits: use fractions for every split or episode lists for every split, not both")
    if not fractions:
        return {name: list(v) for name, v in splits.items()}  # type: ignore[arg-type]
    if any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise DatasetError(f"--splits: fractions must be > 0 and sum to at most 1, got {fractions}")
    out: dict[str, list[int]] = {}
    start = 0
    names = list(splits)
    for name in names:
        end = start + int(total * splits[name])  # type: ignore[operator]
        if name == names[-1] and abs(sum(fractions) - 1) < 1e-9:
            end = total
        out[name] = list(range(start, end))
        start = end
    return out


def split_dataset(src: str | Path, splits: Mapping[str, float | list[int]], *, out: str | Path) -> dict[str, Path]:
    """Write each split as its own dataset root, `out`/NAME (episodes renumbered in their order)."""
    source = Source(src)
    resolved = resolve_splits(splits, source.meta.total_episodes)
    seen: set[int] = set()
    for name, episodes in resolved.items():
        if not episodes:
            raise DatasetError(f"--splits: split {name!r} gets no episode of the {source.meta.total_episodes}; "
                               "raise its fraction or list its episodes")
        _check_episodes(source, episodes, f"--splits {name}")
        if seen & set(episodes):
            raise DatasetError(f"--splits: episodes {sorted(seen & set(episodes))} are in more than one split")
        seen |= set(episodes)
    output = EditOutput(out, [source.root], False)
    with output as tmp:
        for name, episodes in resolved.items():
            _build(tmp / name, [(source, e) for e in sorted(episodes)])
    return {name: output.dst / name for name in resolved}


def _feature_signature(ft: Mapping[str, Any]) -> tuple:
    return ft["dtype"], list(ft["shape"]), ft.get("names")


def merge_datasets(srcs: Sequence[str | Path], *, out: str | Path) -> Path:
    """Concatenate datasets in the order given (same fps, robot_type and features); tasks are unioned."""
    if len(srcs) < 2:
        raise DatasetError("merge: give at least two dataset roots")
    sources = [Source(s) for s in srcs]
    first = sources[0]
    for other in sources[1:]:
        where = f"merge: {other.root} vs {first.root}"
        if other.meta.fps != first.meta.fps:
            raise DatasetError(f"{where}: fps {other.meta.fps} != {first.meta.fps}; datasets of one fps only")
        if other.meta.info.get("robot_type") != first.meta.info.get("robot_type"):
            raise DatasetError(f"{where}: robot_type {other.meta.info.get('robot_type')!r} != "
                               f"{first.meta.info.get('robot_type')!r}")
        a, b = first.meta.features, other.meta.features
        if set(a) != set(b):
            raise DatasetError(f"{where}: features differ — only in {first.root}: {sorted(set(a) - set(b))}, "
                               f"only in {other.root}: {sorted(set(b) - set(a))}")
        for key in a:
            if _feature_signature(a[key]) != _feature_signature(b[key]):
                raise DatasetError(f"{where}: feature {key!r} is {_feature_signature(b[key])} there but "
                                   f"{_feature_signature(a[key])} in the first (dtype, shape, names)")
            if a[key]["dtype"] == "video" and a[key]["info"].get("video.codec") != b[key]["info"].get("video.codec"):
                raise DatasetError(f"{where}: camera {key!r} is {b[key]['info'].get('video.codec')} there but "
                                   f"{a[key]['info'].get('video.codec')} in the first; re-encode one with "
                                   "`apprentice dataset reencode-videos`")
    output = EditOutput(out, [s.root for s in sources], False)
    with output as tmp:
        _build(tmp, [(s, e) for s in sources for e in range(s.meta.total_episodes)])
    return output.dst


def remove_feature(src: str | Path, names: Sequence[str], *, out: str | Path | None = None,
                   in_place: bool = False) -> Path:
    """Drop features (a camera's videos go with it); the bookkeeping columns cannot be removed."""
    source = Source(src)
    required = [n for n in names if n in DEFAULT_FEATURES]
    if required:
        raise DatasetError(f"--features: {required} are required by the format ({sorted(DEFAULT_FEATURES)}) "
                           "and cannot be removed")
    unknown = [n for n in names if n not in source.meta.features]
    if unknown or not names:
        raise DatasetError(f"--features: {unknown or 'nothing'} is not a feature of {source.root}; it has "
                           f"{sorted(k for k in source.meta.features if k not in DEFAULT_FEATURES)}")
    features = {k: v for k, v in source.meta.features.items() if k not in names}
    return _rewrite(source, out, in_place, features=features)


def modify_tasks(src: str | Path, *, new_task: str | None = None, replacements: Mapping[str, str] | None = None,
                 episode_tasks: Mapping[int, str] | None = None, out: str | Path | None = None,
                 in_place: bool = False) -> Path:
    """Rename tasks. Per frame, lerobot's precedence: episode_tasks > replacements > new_task > original."""
    source = Source(src)
    replacements, episode_tasks = dict(replacements or {}), dict(episode_tasks or {})
    if not (new_task or replacements or episode_tasks):
        raise DatasetError("modify-tasks: give --new-task, --replace OLD NEW or --episode-task N TASK")
    _check_episodes(source, episode_tasks, "--episode-task")
    unknown = sorted(set(replacements) - set(source.meta.tasks))
    if unknown:
        raise DatasetError(f"--replace: {unknown} are not tasks of {source.root}; it has {source.meta.tasks}")
    if any(not t for t in [*replacements.values(), *episode_tasks.values()]):
        raise DatasetError("modify-tasks: a task cannot be the empty string")

    def frame_tasks(_: Source, e: int, tasks: list[str]) -> list[str]:
        if e in episode_tasks:
            return [episode_tasks[e]] * len(tasks)
        return [replacements.get(t) or new_task or t for t in tasks]

    return _rewrite(source, out, in_place, frame_tasks=frame_tasks)


def recompute_stats(src: str | Path, *, images: bool = False, out: str | Path | None = None,
                    in_place: bool = False) -> Path:
    """Recompute every numeric feature's stats from the data (per episode and stats.json); with
    `images`, camera stats too, from decoded frames sampled as the writer samples them."""
    source = Source(src)

    def visual_stats(s: Source, e: int, rows: pa.Table) -> dict[str, Stats]:
        indices = sample_indices(rows.num_rows)
        return {k: image_stats(np.stack([downsample(f) for f in s.frames(e, k, rows, indices)]))
                for k in s.visual_keys}

    return _rewrite(source, out, in_place, visual_stats=visual_stats if images else None)


def _video_features(source: Source, keys: Sequence[str], vcodec: str) -> dict[str, Any]:
    _, codec = codec_names(vcodec)
    features = {k: dict(v) for k, v in source.meta.features.items()}
    for key in keys:
        features[key].update(dtype="video", names=features[key].get("names") or ["height", "width", "channels"],
                             info=video_feature_info(features[key]["shape"], codec, source.meta.fps))
    return features


def reencode_videos(src: str | Path, *, vcodec: str = "libsvtav1", crf: int = 30, gop: int = 2,
                    preset: int | None = None, out: str | Path | None = None, in_place: bool = False) -> Path:
    """Decode every camera and encode it again with new settings (episode by episode, so later edits
    can still copy packets at episode boundaries)."""
    source = Source(src)
    if not source.meta.video_keys:
        raise DatasetError(f"{source.root}: has no video features to re-encode")
    features = _video_features(source, source.meta.video_keys, vcodec)
    return _rewrite(source, out, in_place, features=features, videos=lambda s, e, k, rows: s.frames(e, k, rows),
                    gop=gop, crf=crf, preset=preset)


def convert_image_to_video(src: str | Path, *, vcodec: str = "libsvtav1", crf: int = 30, gop: int = 2,
                           preset: int | None = None, out: str | Path | None = None,
                           in_place: bool = False) -> Path:
    """Turn `image` features (PNG/JPEG cells in parquet) into `video` features (concatenated mp4s);
    their stats are kept, computed on the original images as lerobot keeps them."""
    source = Source(src)
    keys = [k for k, ft in source.meta.features.items() if ft["dtype"] == "image"]
    if not keys:
        raise DatasetError(f"{source.root}: has no image features to convert (cameras: "
                           f"{source.meta.video_keys} are already video)")
    features = _video_features(source, keys, vcodec)

    def videos(s: Source, e: int, key: str, rows: pa.Table) -> VideoSource:
        return s.frames(e, key, rows) if key in keys else s.segment(e, key)

    return _rewrite(source, out, in_place, features=features, videos=videos, gop=gop, crf=crf, preset=preset)
