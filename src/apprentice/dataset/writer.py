"""DatasetWriter: record episodes into a LeRobotDataset v3.0 that real lerobot loads as is.

Crash safety: every file is replaced atomically (write tmp, fsync, rename), and an episode becomes part
of the dataset at one moment — when its row lands in meta/episodes. Video and data are written
before that row, info.json and stats.json after it (both are derived from the rows). A writer killed at
any point therefore leaves completed episodes intact; `DatasetWriter.open` / `apprentice dataset
repair` trims what an interrupted save left behind (see recovery.py).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from apprentice.dataset.format import (
    CHUNKS_SIZE,
    DATA_FILES_SIZE_IN_MB,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    INFO_PATH,
    STAGING_DIR,
    STATS_PATH,
    TIMESTAMP_TOLERANCE_S,
    VIDEO_FILES_SIZE_IN_MB,
    DatasetError,
    arrow_schema,
    make_info,
    next_chunk_file,
    validate_features,
    video_feature_info,
    write_json_atomic,
    write_parquet_atomic,
)
from apprentice.dataset.metadata import DatasetMeta, LocalStore, write_tasks
from apprentice.dataset.stats import (
    STAT_KEYS,
    Stats,
    aggregate_stats,
    downsample,
    image_stats,
    numeric_stats,
    sample_indices,
    stats_to_columns,
    stats_to_json,
)
from apprentice.dataset.video import EpisodeEncoder, append_video, codec_names, video_signature

log = logging.getLogger(__name__)
MB = 1024 * 1024
MAX_STATS_FRAMES = 1024  # downsampled frames kept per camera for image stats before thinning by 2


@dataclass
class EncodedEpisode:
    """An episode ready to append as is: every non-video feature as a column of `len(frame_tasks)` rows,
    each camera as an mp4 holding exactly those frames at pts i/fps, and (optionally) its stats."""

    columns: Mapping[str, np.ndarray]
    timestamps: np.ndarray
    frame_tasks: Sequence[str]
    videos: Mapping[str, Path] = dataclass_field(default_factory=dict)
    stats: Mapping[str, Stats] = dataclass_field(default_factory=dict)


@dataclass
class _Episode:
    """An episode being saved: its place in the dataset, complete columns, stats and staged videos."""

    index: int
    start: int
    length: int
    tasks: list[str]
    columns: dict[str, np.ndarray]
    stats: dict[str, Stats] = dataclass_field(default_factory=dict)
    videos: dict[str, Path] = dataclass_field(default_factory=dict)


class DatasetWriter:
    """Appends episodes to a dataset root. Use `create` for a new dataset, `open` to continue one."""

    def __init__(self, root: Path, info: dict[str, Any], *, vcodec: str, gop: int = 2, crf: int = 30,
                 preset: int | None = None) -> None:
        self.root = Path(root)
        self.info = info
        self.fps = int(info["fps"])
        self.features = {k: v for k, v in info["features"].items() if k not in DEFAULT_FEATURES}
        self.video_keys = [k for k, ft in self.features.items() if ft["dtype"] == "video"]
        # lerobot's `image` features (PNG bytes in the parquet) pass through save_encoded_episodes only;
        # add_frame records cameras as video.
        self.image_keys = [k for k, ft in self.features.items() if ft["dtype"] == "image"]
        self.vcodec, self._video_opts = vcodec, {"gop": gop, "crf": crf, "preset": preset}
        self._fresh_video_file: set[str] = set()  # cameras whose next episode must start a new video file
        self.schema = arrow_schema(info["features"])
        self.tasks: list[str] = []
        self.episodes_in_meta_file: list[dict[str, Any]] = []
        self.stats: dict[str, Stats] = {}
        self.meta_file = (0, 0)
        self.data_file = (0, 0)
        self.video_files: dict[str, tuple[int, int, int]] = {k: (0, 0, 0) for k in self.video_keys}
        self._closed = False
        self.clear_episode_buffer()

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, root: str | Path, *, features: Mapping[str, Mapping[str, Any]], fps: int,
               robot_type: str | None = None, vcodec: str = "libsvtav1", gop: int = 2, crf: int = 30,
               preset: int | None = None, image_writer_threads: int = 0,
               data_files_size_in_mb: float = DATA_FILES_SIZE_IN_MB,
               video_files_size_in_mb: float = VIDEO_FILES_SIZE_IN_MB,
               chunks_size: int = CHUNKS_SIZE) -> DatasetWriter:
        """Start a new dataset at `root` (must not exist). `image_writer_threads` is accepted for lerobot
        API parity; every camera is encoded on its own background thread regardless."""
        root = Path(root)
        if root.exists():
            raise DatasetError(f"{root}: already exists; use DatasetWriter.open to append, or pick a new root")
        if not isinstance(fps, int) or fps <= 0:
            raise DatasetError(f"fps must be a positive int, got {fps!r}")
        features = {k: dict(v) for k, v in features.items() if k not in DEFAULT_FEATURES}
        validate_features(features)
        _, codec = codec_names(vcodec)
        for ft in features.values():
            if ft["dtype"] == "video":
                ft.setdefault("names", ["height", "width", "channels"])
                ft["info"] = video_feature_info(ft["shape"], codec, fps)
            ft.setdefault("names", None)
        info = make_info(features, fps, robot_type, chunks_size=chunks_size,
                         data_files_size_in_mb=data_files_size_in_mb,
                         video_files_size_in_mb=video_files_size_in_mb)
        root.mkdir(parents=True)
        write_tasks(root, [])
        write_json_atomic(root / INFO_PATH, info)
        return cls(root, info, vcodec=vcodec, gop=gop, crf=crf, preset=preset)

    @classmethod
    def open(cls, root: str | Path, *, vcodec: str | None = None, **video_options: Any) -> DatasetWriter:
        """Continue an existing dataset; first repairs what a crashed writer left (see recovery.py)."""
        root = Path(root)
        meta = DatasetMeta.load(LocalStore(root))
        if vcodec is None:
            codecs = {meta.features[k]["info"]["video.codec"] for k in meta.video_keys}
            vcodec = "h264" if codecs == {"h264"} else "libsvtav1"
        writer = cls(root, meta.info, vcodec=vcodec, **video_options)
        writer._load_state()
        writer._fresh_video_file = set(meta.video_keys)
        return writer

    def _load_state(self) -> None:
        """Repair the dataset to its committed episodes and continue from the last one."""
        from apprentice.dataset.recovery import repair

        for action in repair(self.root):
            log.warning("%s: %s", self.root, action)
        meta = DatasetMeta.load(LocalStore(self.root))
        self.info = meta.info
        self.tasks = list(meta.tasks)
        self.stats = meta.stats
        self.meta_file, self.data_file = (0, 0), (0, 0)
        self.episodes_in_meta_file = []
        self.video_files = {k: (0, 0, 0) for k in self.video_keys}
        if meta.episodes:
            last = meta.episodes[-1]
            self.meta_file = (last["meta/episodes/chunk_index"], last["meta/episodes/file_index"])
            self.episodes_in_meta_file = [
                ep for ep in meta.episodes
                if (ep["meta/episodes/chunk_index"], ep["meta/episodes/file_index"]) == self.meta_file]
            self.data_file = (last["data/chunk_index"], last["data/file_index"])
            for key in self.video_keys:
                pos = (last[f"videos/{key}/chunk_index"], last[f"videos/{key}/file_index"])
                self.video_files[key] = (*pos, round(last[f"videos/{key}/to_timestamp"] * self.fps))

    # ------------------------------------------------------------------ recording
    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def episode_buffer_size(self) -> int:
        return len(self._frames_tasks)

    def clear_episode_buffer(self) -> None:
        """Discard the episode being recorded (nothing of it has reached the dataset)."""
        for encoder in getattr(self, "_encoders", {}).values():
            encoder.abort()
        self._buffer: dict[str, list[np.ndarray]] = {k: [] for k in self.features if k not in self.video_keys}
        self._frames_tasks: list[str | None] = []
        self._timestamps: list[float] = []
        self._encoders: dict[str, EpisodeEncoder] = {}
        self._stats_frames: dict[str, list[np.ndarray]] = {k: [] for k in self.video_keys}
        self._stats_stride = 1

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Add one time step: every feature of the dataset, plus optional "task" and "timestamp"."""
        if self._closed:
            raise DatasetError(f"{self.root}: writer is finalized; open it again with DatasetWriter.open")
        if self.image_keys:
            raise DatasetError(f"{self.root}: 'image' features {self.image_keys} are not recorded frame by frame; "
                               "the writer records cameras as 'video' features")
        unknown = set(frame) - set(self.features) - {"task", "timestamp"}
        if unknown:
            raise DatasetError(f"add_frame: unknown feature(s) {sorted(unknown)}; the dataset has "
                               f"{sorted(self.features)}")
        frame_index = len(self._frames_tasks)
        timestamp = float(frame.get("timestamp", frame_index / self.fps))
        if abs(timestamp - frame_index / self.fps) > TIMESTAMP_TOLERANCE_S:
            # Video frame i plays at i/fps; a stamp off that grid (e.g. a raw ROS stamp) would make the
            # dataset fail to load later (lerobot's check too), so it is refused now, before commit.
            raise DatasetError(f"add_frame: frame {frame_index} has timestamp {timestamp:.6f} but frames sit at "
                               f"frame_index/fps = {frame_index / self.fps:.6f}; resample onto the {self.fps} fps "
                               "grid (or omit 'timestamp')")
        for key, ft in self.features.items():
            if key not in frame:
                raise DatasetError(f"add_frame: feature {key!r} missing from frame {frame_index}")
            if key in self.video_keys:
                self._add_image(key, ft, frame[key], frame_index)
            else:
                self._buffer[key].append(self._check_value(key, ft, frame[key], frame_index))
        self._frames_tasks.append(frame.get("task"))
        self._timestamps.append(timestamp)

    def _check_value(self, key: str, ft: Mapping[str, Any], value: Any, frame_index: int) -> np.ndarray:
        if ft["dtype"] == "string":
            return np.asarray(str(value), dtype=object).reshape(1)
        array = np.asarray(value)
        if array.size != int(np.prod(ft["shape"])):
            raise DatasetError(f"add_frame: feature {key!r} in frame {frame_index} has shape {array.shape}, "
                               f"expected {tuple(ft['shape'])}")
        return array.astype(ft["dtype"], copy=True).reshape(ft["shape"])  # callers may reuse buffers

    def _add_image(self, key: str, ft: Mapping[str, Any], value: Any, frame_index: int) -> None:
        image = np.asarray(value)
        height, width, _ = ft["shape"]
        if image.shape == (3, height, width):  # accept channel-first like lerobot does
            image = image.transpose(1, 2, 0)
        if image.shape != (height, width, 3):
            raise DatasetError(f"add_frame: camera {key!r} frame {frame_index} has shape {image.shape}, "
                               f"expected {(height, width, 3)} (HWC uint8)")
        if image.dtype != np.uint8:
            image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
        # Always our own copy: the encoder thread reads it later, and cameras often reuse their buffers.
        image = np.array(image, dtype=np.uint8, order="C", copy=True)
        if key not in self._encoders:
            staging = self.root / STAGING_DIR / f"{key}-episode-{self.num_episodes:06d}.mp4"
            staging.unlink(missing_ok=True)
            self._encoders[key] = EpisodeEncoder(staging, fps=self.fps, vcodec=self.vcodec, **self._video_opts)
        self._encoders[key].put(image)
        if frame_index % self._stats_stride == 0:
            self._stats_frames[key].append(downsample(image).copy())
            if len(self._stats_frames[key]) > MAX_STATS_FRAMES:
                # Long episode: keep every other frame so memory stays bounded.
                for k in self._stats_frames:
                    self._stats_frames[k] = self._stats_frames[k][::2]
                self._stats_stride *= 2

    # ------------------------------------------------------------------ saving
    def save_episode(self, task: str | None = None) -> int:
        """Write the buffered episode; it is complete on disk when this returns. Returns its index."""
        length = len(self._frames_tasks)
        if length == 0:
            raise DatasetError(f"{self.root}: save_episode with no frames; call add_frame first")
        frame_tasks = [task or t for t in self._frames_tasks]
        if None in frame_tasks:
            raise DatasetError(f"{self.root}: frame {frame_tasks.index(None)} has no task; pass task= to "
                               "save_episode or 'task' in add_frame")
        columns: dict[str, np.ndarray] = {k: np.stack(v) for k, v in self._buffer.items()}
        columns["timestamp"] = np.array(self._timestamps)
        episode = self._complete(columns, frame_tasks, self.num_episodes, int(self.info["total_frames"]))
        episode.stats = self._episode_stats(episode.columns, length)
        for key in self.video_keys:
            encoder = self._encoders.pop(key, None)
            encoded = encoder.finish() if encoder else 0
            if encoded != length:
                self.clear_episode_buffer()
                raise DatasetError(f"{self.root}: camera {key!r} got {encoded} frames for a {length}-frame "
                                   "episode; every add_frame must carry every camera")
            episode.videos[key] = encoder.path
        self._save([episode], commit=lambda rows: self._commit_row(rows[0]))
        self.clear_episode_buffer()
        return episode.index

    def add_tasks(self, tasks: Sequence[str]) -> None:
        """Register tasks ahead of the episodes that use them, in this order (a converted dataset keeps its
        task_index values this way)."""
        new = [t for t in dict.fromkeys(tasks) if t not in self.tasks]
        if new:
            write_tasks(self.root, self.tasks + new)
            self.tasks += new
            self.info["total_tasks"] = len(self.tasks)
            write_json_atomic(self.root / INFO_PATH, self.info)

    def save_encoded_episodes(self, episodes: Sequence[EncodedEpisode]) -> list[int]:
        """Append episodes whose frames are already columns and whose cameras are already encoded (a
        converter's input). Video packets are copied, never re-encoded; all of them land with one rewrite
        per touched data/video file and one commit. Returns their indices."""
        if self._closed or self._frames_tasks:
            raise DatasetError(f"{self.root}: save_encoded_episodes needs an open writer with no episode "
                               "being recorded")
        pending: list[_Episode] = []
        start, index = int(self.info["total_frames"]), self.num_episodes
        known = list(self.tasks)
        for ep in episodes:
            missing = [k for k in self.features if k not in self.video_keys and k not in ep.columns]
            missing += [k for k in self.video_keys if k not in ep.videos]
            if missing:
                raise DatasetError(f"{self.root}: encoded episode {index} lacks feature(s) {missing}")
            length = len(ep.frame_tasks)
            bad = [k for k, v in ep.columns.items() if len(v) != length]
            if bad or len(ep.timestamps) != length:
                raise DatasetError(f"{self.root}: encoded episode {index} has {length} frames but columns "
                                   f"{bad or ['timestamp']} hold a different number")
            off = np.abs(np.asarray(ep.timestamps, np.float64) - np.arange(length) / self.fps)
            if length and off.max() > TIMESTAMP_TOLERANCE_S:
                raise DatasetError(f"{self.root}: encoded episode {index} frame {int(off.argmax())} has timestamp "
                                   f"{float(ep.timestamps[int(off.argmax())]):.6f}, not frame_index/fps; "
                                   f"resample onto the {self.fps} fps grid")
            columns = {k: np.asarray(v) for k, v in ep.columns.items() if k in self.features}
            columns["timestamp"] = np.asarray(ep.timestamps)
            episode = self._complete(columns, list(ep.frame_tasks), index, start, known)
            known += [t for t in episode.tasks if t not in known]
            episode.videos = dict(ep.videos)
            # Given stats win (computed from the original frames); what they lack (e.g. the quantiles v2.1
            # never stored) is computed here from the columns.
            computed = self._episode_stats(episode.columns, length, with_video=False)
            episode.stats = {k: {**computed.get(k, {}), **{s: np.asarray(v) for s, v in ep.stats.get(k, {}).items()}}
                             for k in self.info["features"] if k in computed or k in ep.stats}
            pending.append(episode)
            start, index = start + length, index + 1
        if pending:
            self._save(pending, commit=self._commit_rows)
        return [e.index for e in pending]

    def _complete(self, columns: dict[str, np.ndarray], frame_tasks: list[str], episode_index: int, start: int,
                  known_tasks: list[str] | None = None) -> _Episode:
        """Add the default columns (frame_index, episode_index, index, task_index) to an episode's columns."""
        known = list(self.tasks if known_tasks is None else known_tasks)
        length = len(frame_tasks)
        known += [t for t in dict.fromkeys(frame_tasks) if t not in known]
        columns["frame_index"] = np.arange(length, dtype=np.int64)
        columns["episode_index"] = np.full(length, episode_index, dtype=np.int64)
        columns["index"] = np.arange(start, start + length, dtype=np.int64)
        columns["task_index"] = np.array([known.index(t) for t in frame_tasks], dtype=np.int64)
        return _Episode(episode_index, start, length, list(dict.fromkeys(frame_tasks)), columns)

    def _save(self, episodes: list[_Episode], commit: Callable[[list[dict[str, Any]]], None]) -> None:
        """Write data, videos, tasks, then commit the episode rows; info.json and stats.json follow."""
        tasks = list(self.tasks)
        for ep in episodes:
            tasks += [t for t in ep.tasks if t not in tasks]
        try:
            placements = self._write_data([self._table(ep.columns, ep.length) for ep in episodes])
            videos = {key: self._write_videos(key, [(ep.videos[key], ep.length) for ep in episodes])
                      for key in self.video_keys}
            rows = []
            for i, ep in enumerate(episodes):
                row: dict[str, Any] = {"episode_index": ep.index, "tasks": ep.tasks, "length": ep.length,
                                       **placements[i], "dataset_from_index": ep.start,
                                       "dataset_to_index": ep.start + ep.length}
                for key in self.video_keys:
                    row.update(videos[key][i])
                row.update(stats_to_columns(ep.stats))
                rows.append(row)
            if len(tasks) > len(self.tasks):
                write_tasks(self.root, tasks)
            commit(rows)
        except BaseException:
            # Nothing was committed: drop what this save wrote and the frames, so the next episode
            # starts from the dataset's committed state (as after a crash).
            self.clear_episode_buffer()
            self._load_state()
            raise
        self.tasks = tasks
        new_stats = [ep.stats for ep in episodes]
        self.stats = aggregate_stats([self.stats, *new_stats] if self.stats else new_stats)
        last = episodes[-1]
        self.info.update(total_episodes=last.index + 1, total_frames=last.start + last.length,
                         total_tasks=len(self.tasks), splits={"train": f"0:{last.index + 1}"})
        write_json_atomic(self.root / STATS_PATH, stats_to_json(self.stats))
        write_json_atomic(self.root / INFO_PATH, self.info)

    def _episode_stats(self, columns: Mapping[str, np.ndarray], length: int,
                       with_video: bool = True) -> dict[str, Stats]:
        stats: dict[str, Stats] = {}
        for key, ft in self.info["features"].items():
            if ft["dtype"] == "string":
                continue
            if key in self.image_keys:
                continue  # only encoded episodes carry images, with their stats
            if key in self.video_keys:
                if with_video:
                    kept = self._stats_frames[key]
                    wanted = [min(i // self._stats_stride, len(kept) - 1) for i in sample_indices(length)]
                    stats[key] = image_stats(np.stack([kept[i] for i in wanted]))
            else:
                stats[key] = numeric_stats(columns[key])
        return {k: {s: v[s] for s in STAT_KEYS} for k, v in stats.items()}

    def _table(self, columns: Mapping[str, np.ndarray], length: int) -> pa.Table:
        arrays = []
        for field in self.schema:
            values = columns[field.name]
            if pa.types.is_fixed_size_list(field.type):
                flat = pa.array(values.reshape(-1), type=field.type.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
            else:
                arrays.append(pa.array(values.reshape(length), type=field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _write_data(self, tables: list[pa.Table]) -> list[dict[str, int]]:
        """Append one table per episode to the current data file, rolling over by size; each touched file
        is rewritten once."""
        limit = self.info["data_files_size_in_mb"] * MB
        chunk, file = self.data_file
        path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
        size = path.stat().st_size if path.exists() else 0
        kept: list[pa.Table] = []  # the file's existing row groups, read only if we append to it
        group: list[pa.Table] = []
        placements = []
        for table in tables:
            if size and size + table.nbytes >= limit:
                if group:
                    write_parquet_atomic(path, [*kept, *group])
                chunk, file = next_chunk_file(chunk, file, self.info["chunks_size"])
                path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
                size, kept, group = 0, [], []
            elif size and not group and not kept:
                parquet = pq.ParquetFile(path)
                kept = [parquet.read_row_group(i) for i in range(parquet.num_row_groups)]
            group.append(table)
            size += table.nbytes
            placements.append({"data/chunk_index": chunk, "data/file_index": file})
        if group:
            write_parquet_atomic(path, [*kept, *group])
        self.data_file = (chunk, file)
        return placements

    def _write_videos(self, key: str, sources: list[tuple[Path, int]]) -> list[dict[str, Any]]:
        """Append each (episode mp4, frame count) to the camera's current file, rolling over by size and
        whenever the codec header differs; staged episode files are removed once copied."""
        limit = self.info["video_files_size_in_mb"] * MB
        chunk, file, frames = self.video_files[key]
        path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        size = path.stat().st_size if frames else 0
        signature = video_signature(path) if frames else None
        keep, group, placements = frames, [], []
        for src, length in sources:
            src_signature = video_signature(src)
            # Packets are copied behind the file's one codec header. A reopened dataset's last file may have
            # been encoded with other settings (libx264's headers depend on the CRF; other packets decode to
            # wrong pixels, without an error), so the first episode after open() starts a new file.
            if frames and (size + src.stat().st_size >= limit or key in self._fresh_video_file
                           or src_signature != signature):
                if group:
                    append_video(path, keep, self.fps, group)
                chunk, file = next_chunk_file(chunk, file, self.info["chunks_size"])
                path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
                frames = size = keep = 0
                group = []
            self._fresh_video_file.discard(key)
            signature = signature if frames else src_signature
            placements.append({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                               f"videos/{key}/from_timestamp": frames / self.fps,
                               f"videos/{key}/to_timestamp": (frames + length) / self.fps})
            group.append(src)
            size += src.stat().st_size
            frames += length
        if group:
            append_video(path, keep, self.fps, group)
        for src, _ in sources:
            if STAGING_DIR in src.parts:
                src.unlink(missing_ok=True)
        self.video_files[key] = (chunk, file, frames)
        return placements

    def _commit_row(self, row: dict[str, Any]) -> None:
        """The commit point of a recorded episode: it exists once its row is in meta/episodes."""
        self._commit_rows([row])

    def _commit_rows(self, rows: list[dict[str, Any]]) -> None:
        chunk, file = self.meta_file
        path = self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
        if path.exists() and path.stat().st_size >= self.info["data_files_size_in_mb"] * MB:
            chunk, file = next_chunk_file(chunk, file, self.info["chunks_size"])
            path = self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
            self.episodes_in_meta_file = []
        for row in rows:
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = chunk, file
        rows = [*self.episodes_in_meta_file, *rows]
        write_parquet_atomic(path, [pa.Table.from_pylist(rows)])
        self.meta_file = (chunk, file)
        self.episodes_in_meta_file = rows

    # ------------------------------------------------------------------ closing
    def finalize(self) -> None:
        """Close the writer. An episode still being recorded (not saved) is discarded."""
        if self._closed:
            return
        if self._frames_tasks:
            log.warning("%s: discarding %d unsaved frames at finalize", self.root, len(self._frames_tasks))
        self.clear_episode_buffer()
        shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()

    def __repr__(self) -> str:
        return f"DatasetWriter({str(self.root)!r}, episodes={self.num_episodes}, fps={self.fps})"
