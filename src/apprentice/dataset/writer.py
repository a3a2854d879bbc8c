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
from collections.abc import Mapping
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
from apprentice.dataset.video import EpisodeEncoder, append_video, codec_names

log = logging.getLogger(__name__)
MB = 1024 * 1024
MAX_STATS_FRAMES = 1024  # downsampled frames kept per camera for image stats before thinning by 2


class DatasetWriter:
    """Appends episodes to a dataset root. Use `create` for a new dataset, `open` to continue one."""

    def __init__(self, root: Path, info: dict[str, Any], *, vcodec: str, gop: int = 2, crf: int = 30,
                 preset: int | None = None) -> None:
        self.root = Path(root)
        self.info = info
        self.fps = int(info["fps"])
        self.features = {k: v for k, v in info["features"].items() if k not in DEFAULT_FEATURES}
        self.video_keys = [k for k, ft in self.features.items() if ft["dtype"] == "video"]
        if any(ft["dtype"] == "image" for ft in self.features.values()):
            raise DatasetError(f"{root}: the writer stores cameras as 'video' features; 'image' is read-only here")
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
        episode_index = self.num_episodes
        start = int(self.info["total_frames"])
        new_tasks = [t for t in dict.fromkeys(frame_tasks) if t not in self.tasks]
        task_index = np.array([(self.tasks + new_tasks).index(t) for t in frame_tasks], dtype=np.int64)

        columns: dict[str, np.ndarray] = {k: np.stack(v) for k, v in self._buffer.items()}
        columns["timestamp"] = np.array(self._timestamps)
        columns["frame_index"] = np.arange(length, dtype=np.int64)
        columns["episode_index"] = np.full(length, episode_index, dtype=np.int64)
        columns["index"] = np.arange(start, start + length, dtype=np.int64)
        columns["task_index"] = task_index
        ep_stats = self._episode_stats(columns, length)

        row: dict[str, Any] = {"episode_index": episode_index, "tasks": list(dict.fromkeys(frame_tasks)),
                               "length": length}
        try:
            row.update(self._write_data(columns, length))
            row["dataset_from_index"], row["dataset_to_index"] = start, start + length
            for key in self.video_keys:
                row.update(self._write_video(key, length))
            row.update(stats_to_columns(ep_stats))
            if new_tasks:
                write_tasks(self.root, self.tasks + new_tasks)
            self._commit_row(row)
        except BaseException:
            # Nothing was committed: drop what this save wrote and the frames, so the next episode
            # starts from the dataset's committed state (as after a crash).
            self.clear_episode_buffer()
            self._load_state()
            raise
        self.tasks += new_tasks

        self.stats = aggregate_stats([self.stats, ep_stats]) if self.stats else ep_stats
        self.info.update(total_episodes=episode_index + 1, total_frames=start + length,
                         total_tasks=len(self.tasks), splits={"train": f"0:{episode_index + 1}"})
        write_json_atomic(self.root / STATS_PATH, stats_to_json(self.stats))
        write_json_atomic(self.root / INFO_PATH, self.info)
        self._encoders = {}
        self.clear_episode_buffer()
        return episode_index

    def _episode_stats(self, columns: Mapping[str, np.ndarray], length: int) -> dict[str, Stats]:
        stats: dict[str, Stats] = {}
        for key, ft in self.info["features"].items():
            if ft["dtype"] == "string":
                continue
            if key in self.video_keys:
                kept = self._stats_frames[key]
                wanted = [min(i // self._stats_stride, len(kept) - 1) for i in sample_indices(length)]
                stats[key] = image_stats(np.stack([kept[i] for i in wanted]))
            else:
                stats[key] = numeric_stats(columns[key])
        return {k: {s: v[s] for s in STAT_KEYS} for k, v in stats.items()}

    def _write_data(self, columns: Mapping[str, np.ndarray], length: int) -> dict[str, int]:
        arrays = []
        for field in self.schema:
            values = columns[field.name]
            if pa.types.is_fixed_size_list(field.type):
                flat = pa.array(values.reshape(-1), type=field.type.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
            else:
                arrays.append(pa.array(values.reshape(length), type=field.type))
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        chunk, file = self.data_file
        path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
        previous: list[pa.Table] = []
        if path.exists():
            if path.stat().st_size + table.nbytes >= self.info["data_files_size_in_mb"] * MB:
                chunk, file = next_chunk_file(chunk, file, self.info["chunks_size"])
                path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
            else:
                parquet = pq.ParquetFile(path)
                previous = [parquet.read_row_group(i) for i in range(parquet.num_row_groups)]
        write_parquet_atomic(path, [*previous, table])
        self.data_file = (chunk, file)
        return {"data/chunk_index": chunk, "data/file_index": file}

    def _write_video(self, key: str, length: int) -> dict[str, Any]:
        encoder = self._encoders.pop(key, None)
        encoded = encoder.finish() if encoder else 0
        if encoded != length:
            raise DatasetError(f"{self.root}: camera {key!r} got {encoded} frames for a {length}-frame episode; "
                               "every add_frame must carry every camera")
        chunk, file, frames = self.video_files[key]
        path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        limit = self.info["video_files_size_in_mb"] * MB
        too_big = frames and path.stat().st_size + encoder.path.stat().st_size >= limit
        # Packets are copied behind the file's one codec header. A reopened dataset's last file may have
        # been encoded with other settings (libx264's headers depend on the CRF; other packets decode to
        # wrong pixels, without an error), so the first episode after open() starts a new file.
        if too_big or (frames and key in self._fresh_video_file):
            chunk, file = next_chunk_file(chunk, file, self.info["chunks_size"])
            frames = 0
            path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        append_video(path, frames, self.fps, encoder.path)
        self._fresh_video_file.discard(key)
        encoder.path.unlink(missing_ok=True)
        self.video_files[key] = (chunk, file, frames + length)
        return {f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                f"videos/{key}/from_timestamp": frames / self.fps,
                f"videos/{key}/to_timestamp": (frames + length) / self.fps}

    def _commit_row(self, row: dict[str, Any]) -> None:
        """The commit point: the episode exists once its row is in meta/episodes."""
        chunk, file = self.meta_file
        path = self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
        if path.exists() and path.stat().st_size >= self.info["data_files_size_in_mb"] * MB:
            chunk, file = next_chunk_file(chunk, file, self.info["chunks_size"])
            path = self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
            self.episodes_in_meta_file = []
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = chunk, file
        rows = [*self.episodes_in_meta_file, row]
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
