"""DatasetBuilder: write a new dataset root from whole episodes — data rows and encoded video — in one pass.

The bulk counterpart of DatasetWriter, used by the edit operations (edit.py): an episode arrives as its
parquet rows plus, per camera, a slice of an existing mp4 (copied packet for packet) or frames to encode.
The builder renumbers episode_index/index/task_index, computes the numeric stats from the rows, rolls
data and video files over at the size limits, and writes meta/ at `finish`. It is not crash-safe per
episode like the writer: a root being built is never a dataset until `finish` returns, and edits
build it beside the destination and rename it into place (output.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

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
    write_json_atomic,
    write_parquet_atomic,
)
from apprentice.dataset.metadata import write_tasks
from apprentice.dataset.reader import column_to_numpy
from apprentice.dataset.stats import Stats, aggregate_stats, numeric_stats, stats_to_columns, stats_to_json
from apprentice.dataset.video import (
    EpisodeEncoder,
    VideoReader,
    VideoSegment,
    concat_segments,
    segment_info,
)

MB = 1024 * 1024
STORED_TO_VCODEC = {"av1": "libsvtav1", "h264": "h264"}  # info.json "video.codec" -> our vcodec argument


class _VideoFile:
    """The mp4 being filled for one camera: the segments it will hold, their size and codec header."""

    def __init__(self, chunk: int, file: int) -> None:
        self.position = (chunk, file)
        self.segments: list[VideoSegment] = []
        self.frames = 0
        self.nbytes = 0
        self.extradata: bytes | None = None


class DatasetBuilder:
    """Builds a dataset at `root` (must not exist) from whole episodes; call `finish` to write meta/."""

    def __init__(self, root: str | Path, *, features: Mapping[str, Mapping[str, Any]], fps: int,
                 robot_type: str | None, chunks_size: int = CHUNKS_SIZE,
                 data_files_size_in_mb: float = DATA_FILES_SIZE_IN_MB,
                 video_files_size_in_mb: float = VIDEO_FILES_SIZE_IN_MB, gop: int = 2, crf: int = 30,
                 preset: int | None = None) -> None:
        self.root = Path(root)
        if self.root.exists():
            raise DatasetError(f"{self.root}: already exists; the builder only writes new roots")
        features = {k: dict(v) for k, v in features.items() if k not in DEFAULT_FEATURES}
        validate_features(features)
        self.info = make_info(features, fps, robot_type, chunks_size=chunks_size,
                              data_files_size_in_mb=data_files_size_in_mb,
                              video_files_size_in_mb=video_files_size_in_mb)
        self.fps = fps
        self.features = self.info["features"]
        self.video_keys = [k for k, ft in self.features.items() if ft["dtype"] == "video"]
        self.visual_keys = [k for k, ft in self.features.items() if ft["dtype"] in ("video", "image")]
        self.schema = arrow_schema(self.features)
        self._video_options = {"gop": gop, "crf": crf, "preset": preset}
        self.tasks: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.episode_stats: list[dict[str, Stats]] = []
        self.total_frames = 0
        self._data_position = (0, 0)
        self._data_tables: list[pa.Table] = []
        self._data_bytes = 0
        self._videos = {k: _VideoFile(0, 0) for k in self.video_keys}
        self.root.mkdir(parents=True)

    # ------------------------------------------------------------------ episodes
    def add_episode(self, data: pa.Table, frame_tasks: Sequence[str],
                    videos: Mapping[str, VideoSegment | Iterable[np.ndarray]],
                    visual_stats: Mapping[str, Stats]) -> int:
        """Append one episode: its data rows in frame order (any bookkeeping values; they are renumbered),
        one task per frame, per camera a segment to copy or HWC uint8 frames to encode, and the stats of
        each camera (kept from the source: pixels are not changed by copying). Returns its index."""
        length = data.num_rows
        if length == 0 or len(frame_tasks) != length:
            raise DatasetError(f"{self.root}: episode {len(self.rows)} has {length} rows and "
                               f"{len(frame_tasks)} frame tasks; both must be the episode length (> 0)")
        missing = [k for k in self.video_keys if k not in videos] + [k for k in self.visual_keys
                                                                     if k not in visual_stats]
        if missing:
            raise DatasetError(f"{self.root}: episode {len(self.rows)} lacks video or stats for {sorted(missing)}")
        episode_index = len(self.rows)
        start = self.total_frames
        for task in dict.fromkeys(frame_tasks):
            if task not in self.tasks:
                self.tasks.append(task)
        columns = {"episode_index": pa.array(np.full(length, episode_index, np.int64)),
                   "index": pa.array(np.arange(start, start + length, dtype=np.int64)),
                   "task_index": pa.array(np.array([self.tasks.index(t) for t in frame_tasks], np.int64))}
        arrays = []
        for field in self.schema:
            if field.name in columns:
                arrays.append(columns[field.name])
            elif field.name in data.column_names:
                arrays.append(data.column(field.name).cast(field.type))
            else:
                raise DatasetError(f"{self.root}: episode {episode_index} has no column {field.name!r}")
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        frame_index = table.column("frame_index").to_numpy()
        if not np.array_equal(frame_index, np.arange(length)):
            raise DatasetError(f"{self.root}: episode {episode_index} rows are not frames 0..{length - 1} in order")

        stats = {k: {s: np.asarray(v) for s, v in visual_stats[k].items()} for k in self.visual_keys}
        timestamps = table.column("timestamp").to_numpy().astype(np.float64)
        if np.any(np.abs(timestamps - frame_index / self.fps) > TIMESTAMP_TOLERANCE_S):
            raise DatasetError(f"{self.root}: episode {episode_index} timestamps are not frame_index/fps")
        for key, ft in self.features.items():
            if ft["dtype"] not in ("video", "image", "string"):
                values = column_to_numpy(table.column(key), ft["shape"], f"{self.root} column {key!r}")
                # The writer (and lerobot) take timestamp stats from the float64 frame_index/fps before it is
                # stored as float32; the float32 values give other histogram quantiles (~3e-5 s apart).
                stats[key] = numeric_stats(frame_index / self.fps if key == "timestamp" else values)
        row: dict[str, Any] = {"episode_index": episode_index, "tasks": list(dict.fromkeys(frame_tasks)),
                               "length": length}
        row.update(self._add_data(table))
        row["dataset_from_index"], row["dataset_to_index"] = start, start + length
        for key in self.video_keys:
            row.update(self._add_video(key, videos[key], length, episode_index))
        row.update(stats_to_columns(stats))
        self.rows.append(row)
        self.episode_stats.append(stats)
        self.total_frames += length
        return episode_index

    def _add_data(self, table: pa.Table) -> dict[str, int]:
        if self._data_tables and self._data_bytes + table.nbytes >= self.info["data_files_size_in_mb"] * MB:
            self._flush_data()
            self._data_position = next_chunk_file(*self._data_position, self.info["chunks_size"])
        self._data_tables.append(table)
        self._data_bytes += table.nbytes
        return {"data/chunk_index": self._data_position[0], "data/file_index": self._data_position[1]}

    def _flush_data(self) -> None:
        chunk, file = self._data_position
        path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
        write_parquet_atomic(path, self._data_tables)
        self._data_tables, self._data_bytes = [], 0

    def _encode(self, key: str, frames: Iterable[np.ndarray], episode_index: int) -> VideoSegment:
        codec = self.features[key]["info"]["video.codec"]
        if codec not in STORED_TO_VCODEC:
            raise DatasetError(f"{self.root}: camera {key!r} is stored as {codec!r}; only av1 and h264 are "
                               "encoded here — re-encode with `apprentice dataset reencode-videos`")
        path = self.root / STAGING_DIR / f"{key}-episode-{episode_index:06d}.mp4"
        encoder = EpisodeEncoder(path, fps=self.fps, vcodec=STORED_TO_VCODEC[codec], **self._video_options)
        try:
            for frame in frames:
                encoder.put(frame)
            count = encoder.finish()
        except BaseException:
            encoder.abort()
            raise
        return VideoSegment(path, 0, count)

    def _add_video(self, key: str, source: VideoSegment | Iterable[np.ndarray], length: int,
                   episode_index: int) -> dict[str, Any]:
        segment = source if isinstance(source, VideoSegment) else self._encode(key, source, episode_index)
        if segment.frames != length:
            raise DatasetError(f"{segment.path}: camera {key!r} has {segment.frames} frames for episode "
                               f"{episode_index} of {length} frames")
        info = segment_info(segment, self.fps)
        if not info.keyframe_start:
            # The slice starts between keyframes (a file encoded as one stream): packets cannot be cut
            # there, so only this episode is decoded and encoded again.
            reader = VideoReader(segment.path)
            try:
                frames = (reader.frame_at((segment.start + i) / self.fps) for i in range(segment.frames))
                segment = self._encode(key, frames, episode_index)
            finally:
                reader.close()
            info = segment_info(segment, self.fps)
        current = self._videos[key]
        too_big = current.segments and current.nbytes + info.nbytes >= self.info["video_files_size_in_mb"] * MB
        if current.segments and (too_big or info.extradata != current.extradata):
            # One codec header per mp4: a slice encoded with other settings starts its own file.
            self._flush_video(key)
            current = self._videos[key] = _VideoFile(*next_chunk_file(*current.position, self.info["chunks_size"]))
        current.segments.append(segment)
        current.extradata = info.extradata
        current.nbytes += info.nbytes
        first = current.frames
        current.frames += length
        return {f"videos/{key}/chunk_index": current.position[0], f"videos/{key}/file_index": current.position[1],
                f"videos/{key}/from_timestamp": first / self.fps,
                f"videos/{key}/to_timestamp": (first + length) / self.fps}

    def _flush_video(self, key: str) -> None:
        current = self._videos[key]
        if not current.segments:
            return
        chunk, file = current.position
        path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        concat_segments(path, current.segments, self.fps)
        for segment in current.segments:  # encoded slices are scratch once copied
            if STAGING_DIR in segment.path.parts and segment.path.is_relative_to(self.root):
                segment.path.unlink(missing_ok=True)
        current.segments = []

    # ------------------------------------------------------------------ finishing
    def finish(self) -> dict[str, Any]:
        """Write the last data/video files and meta/ (episodes, tasks, stats, info); returns info.json."""
        if not self.rows:
            raise DatasetError(f"{self.root}: no episodes to write; a dataset needs at least one")
        self._flush_data()
        for key in self.video_keys:
            self._flush_video(key)
        position, batch, batch_bytes = (0, 0), [], 0
        for row in self.rows:
            size = len(str(row))  # a rough size is enough to roll metadata files over like the writer does
            if batch and batch_bytes + size >= self.info["data_files_size_in_mb"] * MB:
                write_parquet_atomic(self.root / EPISODES_PATH.format(chunk_index=position[0],
                                                                      file_index=position[1]),
                                     [pa.Table.from_pylist(batch)])
                position, batch, batch_bytes = next_chunk_file(*position, self.info["chunks_size"]), [], 0
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = position
            batch.append(row)
            batch_bytes += size
        write_parquet_atomic(self.root / EPISODES_PATH.format(chunk_index=position[0], file_index=position[1]),
                             [pa.Table.from_pylist(batch)])
        write_tasks(self.root, self.tasks)
        write_json_atomic(self.root / STATS_PATH, stats_to_json(aggregate_stats(self.episode_stats)))
        self.info.update(total_episodes=len(self.rows), total_frames=self.total_frames,
                         total_tasks=len(self.tasks), splits={"train": f"0:{len(self.rows)}"})
        write_json_atomic(self.root / INFO_PATH, self.info)
        shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
        return self.info
