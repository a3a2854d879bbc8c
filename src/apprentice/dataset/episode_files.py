"""EpisodeFiles: where whole episodes land on disk — the writer's file placement.

An episode arrives as its parquet rows (one arrow table), its stats and, per camera, an mp4 slice to copy.
Rows are appended to the current data file, each camera's packets to its current video file and the
episode rows to the current meta/episodes file; each rolls over to the next chunk/file by size, and a
video file also whenever the codec header differs. DatasetWriter (writer.py) decides what an episode is
and the order of the writes that makes saving crash-safe; this module only places and writes files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from apprentice.dataset.format import (
    EPISODES_PATH,
    STAGING_DIR,
    DatasetError,
    arrow_schema,
    next_chunk_file,
    write_parquet_atomic,
)
from apprentice.dataset.stats import Stats, stats_to_columns
from apprentice.dataset.video import (
    VideoReader,
    VideoSegment,
    concat_segments,
    encode_frames,
    segment_info,
    vcodec_for,
    video_signature,
)

MB = 1024 * 1024


@dataclass
class EncodedEpisode:
    """An episode ready to append as is: every non-video feature as a column of `len(frame_tasks)` rows,
    each camera as an mp4 holding exactly those frames at pts i/fps — or a `VideoSegment` of a longer mp4,
    copied without a staging file — and (optionally) its stats."""

    columns: Mapping[str, np.ndarray]
    timestamps: np.ndarray
    frame_tasks: Sequence[str]
    videos: Mapping[str, Path | VideoSegment] = dataclass_field(default_factory=dict)
    stats: Mapping[str, Stats] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class VideoSource:
    """A camera's frames of one episode, checked to be copyable: its slice, size and codec header."""

    segment: VideoSegment
    nbytes: int
    signature: tuple[Any, ...]


@dataclass
class Episode:
    """An episode being saved: its place in the dataset, its rows, stats and camera sources."""

    index: int
    start: int
    length: int
    tasks: list[str]
    table: pa.Table
    stats: dict[str, Stats]
    videos: dict[str, VideoSource] = dataclass_field(default_factory=dict)


class EpisodeFiles:
    """The data, video and meta/episodes files the next episodes go to, and how they are written."""

    def __init__(self, root: Path, info: dict[str, Any], video_options: Mapping[str, Any]) -> None:
        self.root = root
        self.info = info  # the writer's info.json dict, shared: sizes, paths and features are read from it
        self.fps = int(info["fps"])
        self.video_keys = [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
        self.schema = arrow_schema(info["features"])
        self.video_options = dict(video_options)
        self.fresh_video_file: set[str] = set()  # cameras whose next episode must start a new video file
        self._staged = 0
        self.continue_after([])

    def continue_after(self, episodes: Sequence[Mapping[str, Any]]) -> None:
        """Place the next episode after the committed `episodes` (meta/episodes rows, in order)."""
        self.meta_file, self.data_file = (0, 0), (0, 0)
        self.episodes_in_meta_file: list[dict[str, Any]] = []
        self.video_files: dict[str, tuple[int, int, int]] = {k: (0, 0, 0) for k in self.video_keys}
        if not episodes:
            return
        last = episodes[-1]
        self.meta_file = (last["meta/episodes/chunk_index"], last["meta/episodes/file_index"])
        self.episodes_in_meta_file = [
            dict(ep) for ep in episodes
            if (ep["meta/episodes/chunk_index"], ep["meta/episodes/file_index"]) == self.meta_file]
        self.data_file = (last["data/chunk_index"], last["data/file_index"])
        for key in self.video_keys:
            pos = (last[f"videos/{key}/chunk_index"], last[f"videos/{key}/file_index"])
            self.video_files[key] = (*pos, round(last[f"videos/{key}/to_timestamp"] * self.fps))

    # ------------------------------------------------------------------ inputs
    def table(self, columns: Mapping[str, np.ndarray], length: int) -> pa.Table:
        """An episode's complete columns as rows of the data schema."""
        arrays = []
        for field in self.schema:
            values = columns[field.name]
            if pa.types.is_fixed_size_list(field.type):
                flat = pa.array(values.reshape(-1), type=field.type.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
            else:
                arrays.append(pa.array(values.reshape(length), type=field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def encode(self, key: str, frames: Iterable[np.ndarray]) -> Path:
        """Encode HWC uint8 frames of camera `key` into a staging mp4 with the camera's codec; removed once
        its packets are copied into the dataset."""
        self._staged += 1
        path = self.root / STAGING_DIR / f"{key}-staged-{self._staged:06d}.mp4"
        vcodec = vcodec_for(self.info["features"][key]["info"].get("video.codec"), f"{self.root}: camera {key!r}")
        encode_frames(path, frames, fps=self.fps, vcodec=vcodec, **self.video_options)
        return path

    def video_source(self, key: str, source: Path | VideoSegment, length: int) -> VideoSource:
        """Check an episode's camera input holds `length` frames that can be copied packet for packet."""
        if isinstance(source, VideoSegment):
            if source.frames != length:
                raise DatasetError(f"{source.path}: camera {key!r} has {source.frames} frames for an episode of "
                                   f"{length} frames")
            info = segment_info(source, self.fps)
            if info.keyframe_start:
                return VideoSource(source, info.nbytes, info.signature)
            # The slice starts between keyframes (a file encoded as one stream): packets cannot be cut there,
            # so only this episode is decoded and encoded again.
            reader = VideoReader(source.path)
            try:
                source = self.encode(key, (reader.frame_at((source.start + i) / self.fps) for i in range(length)))
            finally:
                reader.close()
        signature = video_signature(source)
        return VideoSource(VideoSegment(source, 0, length), source.stat().st_size, signature)

    # ------------------------------------------------------------------ writing
    def write(self, episodes: list[Episode]) -> list[dict[str, Any]]:
        """Write the episodes' rows and videos; returns their meta/episodes rows (not yet committed)."""
        placements = self._write_data([ep.table for ep in episodes])
        videos = {key: self._write_videos(key, [ep.videos[key] for ep in episodes]) for key in self.video_keys}
        rows = []
        for i, ep in enumerate(episodes):
            row: dict[str, Any] = {"episode_index": ep.index, "tasks": ep.tasks, "length": ep.length,
                                   **placements[i], "dataset_from_index": ep.start,
                                   "dataset_to_index": ep.start + ep.length}
            for key in self.video_keys:
                row.update(videos[key][i])
            row.update(stats_to_columns(ep.stats))
            rows.append(row)
        return rows

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

    def _write_videos(self, key: str, sources: list[VideoSource]) -> list[dict[str, Any]]:
        """Append each episode's packets to the camera's current file, rolling over by size and whenever the
        codec header differs; each touched file is rewritten once, staged inputs are removed once copied."""
        limit = self.info["video_files_size_in_mb"] * MB
        chunk, file, frames = self.video_files[key]
        path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        size = path.stat().st_size if frames else 0
        signature = video_signature(path) if frames else None
        keep, group, placements = frames, [], []
        for src in sources:
            # Packets are copied behind the file's one codec header. A reopened dataset's last file may have
            # been encoded with other settings (libx264's headers depend on the CRF; other packets decode to
            # wrong pixels, without an error), so the first episode after open() starts a new file.
            if frames and (size + src.nbytes >= limit or key in self.fresh_video_file
                           or src.signature != signature):
                if group:
                    concat_segments(path, self._kept(path, keep) + group, self.fps)
                chunk, file = next_chunk_file(chunk, file, self.info["chunks_size"])
                path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
                frames = size = keep = 0
                group = []
            self.fresh_video_file.discard(key)
            signature = signature if frames else src.signature
            placements.append({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                               f"videos/{key}/from_timestamp": frames / self.fps,
                               f"videos/{key}/to_timestamp": (frames + src.segment.frames) / self.fps})
            group.append(src.segment)
            size += src.nbytes
            frames += src.segment.frames
        if group:
            concat_segments(path, self._kept(path, keep) + group, self.fps)
        for src in sources:
            if src.segment.path.is_relative_to(self.root / STAGING_DIR):
                src.segment.path.unlink(missing_ok=True)
        self.video_files[key] = (chunk, file, frames)
        return placements

    @staticmethod
    def _kept(path: Path, frames: int) -> list[VideoSegment]:
        """The committed frames of a file being appended to (a tail a crash left past them is dropped)."""
        return [VideoSegment(path, 0, frames)] if frames else []

    def commit(self, rows: list[dict[str, Any]]) -> None:
        """Add the rows to the current meta/episodes file (rolling over by size): the episodes now exist."""
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
