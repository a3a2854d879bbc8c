"""DatasetWriter: record episodes into a LeRobotDataset v3.0 that real lerobot loads as is.

Crash safety: every file is replaced atomically (write tmp, fsync, rename), and an episode becomes part
of the dataset at one moment — when its row lands in meta/episodes. Video and data are written
before that row, info.json and stats.json after it (both are derived from the rows). A writer killed at
any point therefore leaves completed episodes intact; `DatasetWriter.open` / `apprentice dataset
repair` trims what an interrupted save left behind (see recovery.py).

This module records frame by frame and decides what an episode is (columns, tasks, stats) and the order of
the writes; where episodes land — data/video/meta files, roll-over, packet copies — is episode_files.py.
Whole already-encoded episodes (a converter's, an edit's) come in through `save_encoded_episodes`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from apprentice.dataset.episode_files import MB, EncodedEpisode, Episode, EpisodeFiles
from apprentice.dataset.format import (
    CHUNKS_SIZE,
    DATA_FILES_SIZE_IN_MB,
    DEFAULT_FEATURES,
    INFO_PATH,
    STAGING_DIR,
    STATS_PATH,
    TIMESTAMP_TOLERANCE_S,
    VIDEO_FILES_SIZE_IN_MB,
    DatasetError,
    make_info,
    validate_features,
    video_feature_info,
    write_json_atomic,
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
    stats_to_json,
)
from apprentice.dataset.video import EpisodeEncoder, codec_names

__all__ = ["DatasetWriter", "EncodedEpisode"]

log = logging.getLogger(__name__)
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
        # lerobot's `image` features (PNG bytes in the parquet) pass through save_encoded_episodes only;
        # add_frame records cameras as video.
        self.image_keys = [k for k, ft in self.features.items() if ft["dtype"] == "image"]
        self.vcodec, self._video_opts = vcodec, {"gop": gop, "crf": crf, "preset": preset}
        self.tasks: list[str] = []
        self.stats: dict[str, Stats] = {}
        self._files = EpisodeFiles(self.root, info, self._video_opts)
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
        """Start a new dataset at `root` (must not exist). A video feature that carries its own `info` (a
        dataset's features, as edits and the v2.1 converter pass them) keeps it, codec included; the others
        get one for `vcodec`. `image_writer_threads` is accepted for lerobot API parity; every camera is
        encoded on its own background thread regardless."""
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
                ft["info"] = ft.get("info") or video_feature_info(ft["shape"], codec, fps)
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
        writer._files.fresh_video_file = set(meta.video_keys)
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
        fresh = self._files.fresh_video_file
        self._files = EpisodeFiles(self.root, self.info, self._video_opts)
        self._files.fresh_video_file = fresh
        self._files.continue_after(meta.episodes)

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
        episode = self._episode(columns, frame_tasks, self.num_episodes, int(self.info["total_frames"]),
                                self.tasks, self._camera_stats(length))
        for key in self.video_keys:
            encoder = self._encoders.pop(key, None)
            encoded = encoder.finish() if encoder else 0
            if encoded != length:
                self.clear_episode_buffer()
                raise DatasetError(f"{self.root}: camera {key!r} got {encoded} frames for a {length}-frame "
                                   "episode; every add_frame must carry every camera")
            episode.videos[key] = self._files.video_source(key, encoder.path, length)
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

    def encode_video(self, key: str, frames: Iterable[np.ndarray]) -> Path:
        """Encode camera `key`'s frames of one episode (HWC uint8) with the camera's codec, for an
        EncodedEpisode; the staged mp4 is removed once saved (or at finalize)."""
        return self._files.encode(key, frames)

    def save_encoded_episodes(self, episodes: Iterable[EncodedEpisode]) -> list[int]:
        """Append episodes whose frames are already columns and whose cameras are already encoded (a
        converter's or an edit's input). Video packets are copied, never re-encoded — but for a segment that
        starts between keyframes. Episodes are taken in batches of about one data file or video file, each
        landing with one rewrite per touched file and one commit, so memory stays bounded. Returns their
        indices."""
        if self._closed or self._frames_tasks:
            raise DatasetError(f"{self.root}: save_encoded_episodes needs an open writer with no episode "
                               "being recorded")
        saved: list[int] = []
        batch: list[Episode] = []
        known = list(self.tasks)
        start = int(self.info["total_frames"])
        data_bytes, video_bytes = 0, dict.fromkeys(self.video_keys, 0)
        for ep in episodes:
            episode = self._encoded_episode(ep, self.num_episodes + len(batch), start, known)
            batch.append(episode)
            known += [t for t in episode.tasks if t not in known]
            start += episode.length
            data_bytes += episode.table.nbytes
            for key, source in episode.videos.items():
                video_bytes[key] += source.nbytes
            if (data_bytes >= self.info["data_files_size_in_mb"] * MB
                    or max(video_bytes.values(), default=0) >= self.info["video_files_size_in_mb"] * MB):
                self._save(batch, commit=self._files.commit)
                saved += [e.index for e in batch]
                batch, data_bytes, video_bytes = [], 0, dict.fromkeys(self.video_keys, 0)
        if batch:
            self._save(batch, commit=self._files.commit)
            saved += [e.index for e in batch]
        return saved

    def _encoded_episode(self, ep: EncodedEpisode, index: int, start: int, known: list[str]) -> Episode:
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
        episode = self._episode(columns, list(ep.frame_tasks), index, start, known, ep.stats)
        episode.videos = {k: self._files.video_source(k, ep.videos[k], length) for k in self.video_keys}
        return episode

    def _episode(self, columns: dict[str, np.ndarray], frame_tasks: list[str], episode_index: int, start: int,
                 known_tasks: list[str], given_stats: Mapping[str, Stats]) -> Episode:
        """An episode from its feature columns: the default columns (frame_index, episode_index, index,
        task_index) added, its stats and its rows."""
        known = list(known_tasks)
        length = len(frame_tasks)
        known += [t for t in dict.fromkeys(frame_tasks) if t not in known]
        columns["frame_index"] = np.arange(length, dtype=np.int64)
        columns["episode_index"] = np.full(length, episode_index, dtype=np.int64)
        columns["index"] = np.arange(start, start + length, dtype=np.int64)
        columns["task_index"] = np.array([known.index(t) for t in frame_tasks], dtype=np.int64)
        # Given stats win (camera stats, or stats computed from the original frames); what they lack (e.g.
        # the quantiles v2.1 never stored) is computed here from the columns.
        computed = self._numeric_stats(columns)
        stats = {k: {**computed.get(k, {}), **{s: np.asarray(v) for s, v in given_stats.get(k, {}).items()}}
                 for k in self.info["features"] if k in computed or k in given_stats}
        return Episode(episode_index, start, length, list(dict.fromkeys(frame_tasks)),
                       self._files.table(columns, length), stats)

    def _save(self, episodes: list[Episode], commit: Callable[[list[dict[str, Any]]], None]) -> None:
        """Write data, videos, tasks, then commit the episode rows; info.json and stats.json follow."""
        tasks = list(self.tasks)
        for ep in episodes:
            tasks += [t for t in ep.tasks if t not in tasks]
        try:
            rows = self._files.write(episodes)
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

    def _numeric_stats(self, columns: Mapping[str, np.ndarray]) -> dict[str, Stats]:
        stats = {}
        for key, ft in self.info["features"].items():
            if ft["dtype"] not in ("string", "image", "video"):
                computed = numeric_stats(columns[key])
                stats[key] = {s: computed[s] for s in STAT_KEYS}
        return stats

    def _camera_stats(self, length: int) -> dict[str, Stats]:
        """Image stats of the recorded episode's cameras, from the frames kept while recording."""
        stats = {}
        for key in self.video_keys:
            kept = self._stats_frames[key]
            wanted = [min(i // self._stats_stride, len(kept) - 1) for i in sample_indices(length)]
            computed = image_stats(np.stack([kept[i] for i in wanted]))
            stats[key] = {s: computed[s] for s in STAT_KEYS}
        return stats

    def _commit_row(self, row: dict[str, Any]) -> None:
        """The commit point of a recorded episode: it exists once its row is in meta/episodes."""
        self._files.commit([row])

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
