"""LeRobotDataset: torch-style random access to a v3.0 dataset (ours or one real lerobot wrote).

Numeric columns are loaded once into numpy (a few bytes per frame); video frames are decoded on demand
from the concatenated mp4s with one open container per file per process (reopened after a DataLoader
fork). `delta_timestamps` windows follow lerobot: offsets are rounded to whole frames, indices outside
the episode are clamped to its first/last frame and flagged in `<key>_is_pad`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from apprentice.dataset.format import DatasetError, check_data_schema
from apprentice.dataset.metadata import DatasetMeta, LocalStore, Store, read_store_parquet
from apprentice.dataset.video import TOLERANCE_S, VideoReader


def column_to_numpy(column: pa.ChunkedArray | pa.Array, shape: Sequence[int], where: str) -> np.ndarray:
    """Arrow column -> (N, *shape) numpy ((N,) for shape [1] scalars), checking the stored length."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return np.array(array.to_pylist(), dtype=object)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(
            array.type):
        flat = array.flatten().to_numpy(zero_copy_only=False)
        if flat.size != len(array) * int(np.prod(shape)):
            raise DatasetError(f"{where}: stored vectors do not have shape {list(shape)} declared in info.json")
        return flat.reshape(len(array), *shape)
    values = array.to_numpy(zero_copy_only=False)
    return values if list(shape) == [1] else values.reshape(len(array), *shape)


def delta_indices(delta_timestamps: Mapping[str, Sequence[float]], fps: int, features: Mapping[str, Any],
                  tolerance_s: float) -> dict[str, np.ndarray]:
    """Offsets in seconds -> whole-frame offsets; each must be a multiple of 1/fps (lerobot's check)."""
    out = {}
    for key, deltas in delta_timestamps.items():
        if key not in features:
            raise DatasetError(f"delta_timestamps: {key!r} is not a feature of this dataset ({sorted(features)})")
        frames = np.array([d * fps for d in deltas], dtype=np.float64)
        off = np.abs(frames - np.round(frames)) / fps
        if np.any(off > tolerance_s):
            bad = [d for d, o in zip(deltas, off) if o > tolerance_s]
            raise DatasetError(f"delta_timestamps[{key!r}]: {bad} are not multiples of 1/fps = {1 / fps:.6f} s")
        out[key] = np.round(frames).astype(np.int64)
    return out


def decode_image(data: bytes | None, key: str) -> np.ndarray:
    """One PNG/JPEG image (as lerobot stores `image` features) -> (H, W, 3) uint8."""
    if not data:
        raise DatasetError(f"image feature {key!r}: a row has no embedded image bytes (external paths are "
                           "not supported)")
    try:
        with av.open(io.BytesIO(data)) as container:
            return next(container.decode(video=0)).to_ndarray(format="rgb24")
    except (av.FFmpegError, StopIteration) as e:
        raise DatasetError(f"image feature {key!r}: undecodable image bytes ({e})") from None


class LeRobotDataset(torch.utils.data.Dataset):
    """A LeRobotDataset v3.0 from a local root (or a Hub repo id, pulled into the local cache first)."""

    def __init__(self, root: str | Path, episodes: Sequence[int] | None = None,
                 delta_timestamps: Mapping[str, Sequence[float]] | None = None, *,
                 tolerance_s: float = TOLERANCE_S, image_transforms: Any = None, revision: str | None = None,
                 store: Store | None = None) -> None:
        if store is None:
            path = Path(root)
            from apprentice.dataset.hub import default_root, is_repo_id, pull

            if is_repo_id(str(root)):
                # As lerobot: a repo id is read from $HF_LEROBOT_HOME/<repo_id> when it is there (no network),
                # and pulled there first when it is not.
                local = default_root(str(root))
                path = local if (local / "meta" / "info.json").is_file() else pull(str(root), revision=revision)
            store = LocalStore(path)
        self.root = Path(root)
        self.store = store
        self.meta = DatasetMeta.load(store)
        self.tolerance_s = tolerance_s
        self.image_transforms = image_transforms
        total = self.meta.total_episodes
        selected = sorted(set(range(total) if episodes is None else episodes))
        if any(not 0 <= e < total for e in selected):
            raise DatasetError(f"{store.describe('meta/episodes')}: episodes {selected} out of range 0..{total - 1}")
        self.episodes = selected
        self.delta_indices = delta_indices(delta_timestamps or {}, self.fps, self.features, tolerance_s)
        self._load_columns()
        self._readers: dict[str, VideoReader] = {}
        self._inherited: list[VideoReader] = []

    # ------------------------------------------------------------------ properties (lerobot names)
    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def features(self) -> dict[str, Any]:
        return self.meta.features

    @property
    def camera_keys(self) -> list[str]:
        return self.meta.camera_keys

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return len(self._episode_of_row)

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"LeRobotDataset({self.store.describe('')!r}, episodes={self.num_episodes}, "
                f"frames={self.num_frames}, fps={self.fps}, cameras={self.camera_keys})")

    # ------------------------------------------------------------------ loading
    def _load_columns(self) -> None:
        by_file: dict[str, list[int]] = {}
        for e in self.episodes:
            by_file.setdefault(self.meta.episode_data_rel(self.meta.episodes[e]), []).append(e)
        keys = [k for k, ft in self.features.items() if ft["dtype"] not in ("video", "image")]
        # lerobot's `image` features: encoded PNG/JPEG bytes in a {bytes, path} struct column, decoded per sample.
        self._image_keys = [k for k, ft in self.features.items() if ft["dtype"] == "image"]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys + self._image_keys}
        for rel, eps in by_file.items():
            table = read_store_parquet(self.store, rel)
            check_data_schema(Path(self.store.describe(rel)), table.schema,
                              {k: self.features[k] for k in keys})
            ep_col = table.column("episode_index").to_numpy()
            columns = {k: column_to_numpy(table.column(k), self.features[k]["shape"], self.store.describe(rel))
                       for k in keys}
            for k in self._image_keys:
                if k not in table.column_names:
                    raise DatasetError(f"{self.store.describe(rel)}: image column {k!r} declared in info.json "
                                       "is missing")
                columns[k] = np.array(pc.struct_field(table.column(k), "bytes").to_pylist(), dtype=object)
            order = np.argsort(columns["index"], kind="stable")
            for e in eps:
                ep = self.meta.episodes[e]
                rows = order[ep_col[order] == e]
                expected = np.arange(ep["dataset_from_index"], ep["dataset_to_index"])
                if not np.array_equal(columns["index"][rows], expected):
                    raise DatasetError(f"{self.store.describe(rel)}: episode {e} rows do not cover index "
                                       f"{expected[0]}..{expected[-1]} as meta/episodes says; run "
                                       "`apprentice dataset verify`")
                for k in keys + self._image_keys:
                    parts[k].append(columns[k][rows])
        self._images = {k: np.concatenate(parts.pop(k)) for k in self._image_keys}
        self._columns = {k: (np.concatenate(v) if v else np.empty((0,))) for k, v in parts.items()}
        self._episode_of_row = self._columns["episode_index"]
        starts = np.cumsum([0] + [self.meta.episodes[e]["length"] for e in self.episodes])
        self._row_start = {e: int(s) for e, s in zip(self.episodes, starts)}
        self._check_timestamps()

    def _check_timestamps(self) -> None:
        """Consecutive frames of an episode must be 1/fps apart (lerobot's check_timestamps_sync): video
        frames are looked up by timestamp, so a drifted one would silently decode the wrong image."""
        ts = self._columns["timestamp"].astype(np.float64)
        same_episode = self._episode_of_row[1:] == self._episode_of_row[:-1]
        off = np.abs(np.diff(ts) - 1 / self.fps) > self.tolerance_s
        bad = np.flatnonzero(same_episode & off)
        if bad.size:
            row = int(bad[0]) + 1
            raise DatasetError(f"{self.store.describe('data')}: episode {int(self._episode_of_row[row])} frame "
                               f"{int(self._columns['frame_index'][row])} has timestamp {ts[row]:.6f}, "
                               f"{ts[row] - ts[row - 1]:.6f} s after the previous frame instead of 1/fps; "
                               "run `apprentice dataset verify`")

    def column(self, key: str) -> np.ndarray:
        """A numeric feature over all selected frames, shape (N, *shape) ((N,) for scalars)."""
        if key not in self._columns:
            raise DatasetError(f"column({key!r}): not a stored column; have {sorted(self._columns)}")
        return self._columns[key]

    # ------------------------------------------------------------------ video
    def _reader(self, rel: str) -> VideoReader:
        reader = self._readers.get(rel)
        if reader is not None and reader.pid != os.getpid():
            # Forked DataLoader worker: the parent's decoder threads do not exist here, and freeing its
            # container would wait on them forever. Keep it referenced, never touch it, open our own.
            self._inherited.append(reader)
            reader = None
        if reader is None:
            # Single-threaded: a container kept open here outlives the call, and a DataLoader may fork
            # while its decoder threads are mid-frame; a lock one of them held (FFmpeg's log mutex, say)
            # would then be held forever in the child, whose decoder hangs on it.
            reader = self._open_reader(rel, threads=1)
            self._readers[rel] = reader
        return reader

    def _open_reader(self, rel: str, threads: int | None) -> VideoReader:
        opener = None if isinstance(self.store, LocalStore) else self.store.open
        path = self.store.root / rel if isinstance(self.store, LocalStore) else rel
        return VideoReader(path, tolerance_s=self.tolerance_s, opener=opener, threads=threads)

    def _decode(self, key: str, episode: int, timestamps: Sequence[float]) -> np.ndarray:
        ep = self.meta.episodes[episode]
        reader = self._reader(self.meta.episode_video_rel(ep, key))
        start = ep[f"videos/{key}/from_timestamp"]
        return reader.frames_at([start + float(t) for t in timestamps])

    def episode_frames(self, episode_index: int, video_key: str) -> np.ndarray:
        """Every frame of one episode of one camera, (T, H, W, 3) uint8: a video decoded in a single
        forward pass, or an `image` feature's PNG/JPEG cells decoded row by row."""
        cameras = [*self.meta.video_keys, *self._images]
        if video_key not in cameras:
            raise DatasetError(f"episode_frames: {video_key!r} is not a camera feature ({cameras})")
        if not 0 <= episode_index < self.meta.total_episodes:
            raise DatasetError(f"episode_frames: episode {episode_index} out of range")
        ep = self.meta.episodes[episode_index]
        if video_key in self._images:
            if episode_index not in self._row_start:
                raise DatasetError(f"episode_frames: episode {episode_index} is not among the loaded episodes")
            first = self._row_start[episode_index]
            cells = self._images[video_key][first : first + ep["length"]]
            return np.stack([decode_image(cell, video_key) for cell in cells])
        start = ep[f"videos/{video_key}/from_timestamp"]
        # A whole episode decodes fastest with frame threads; this container is closed (its threads
        # joined) before returning, so none is left running for a later fork.
        in_worker = torch.utils.data.get_worker_info() is not None
        reader = self._open_reader(self.meta.episode_video_rel(ep, video_key), threads=1 if in_worker else None)
        try:
            return reader.frames_at([start + i / self.fps for i in range(ep["length"])])
        finally:
            reader.close()

    def episode_frame_chunks(self, episode_index: int, video_key: str, chunk: int,
                             threads: int | None = None) -> Iterator[np.ndarray]:
        """The frames of `episode_frames`, as (<=chunk, H, W, 3) uint8 arrays in order: one forward pass
        whose memory is one chunk, not one episode (a bounded training cache fills with this).
        `threads`: FFmpeg decoder threads (None: FFmpeg's choice; 1 when decoding several files at once)."""
        if video_key in self._images or video_key not in self.meta.video_keys:
            frames = self.episode_frames(episode_index, video_key)  # PNG cells / error messages
            yield from (frames[i : i + chunk] for i in range(0, len(frames), chunk))
            return
        ep = self.meta.episodes[episode_index]
        start = ep[f"videos/{video_key}/from_timestamp"]
        reader = self._open_reader(self.meta.episode_video_rel(ep, video_key), threads=threads)
        try:
            for first in range(0, ep["length"], chunk):
                stop = min(first + chunk, ep["length"])
                yield reader.frames_at([start + i / self.fps for i in range(first, stop)])
        finally:
            reader.close()

    # ------------------------------------------------------------------ samples
    def _to_tensor(self, key: str, values: np.ndarray) -> torch.Tensor | Any:
        if self.features[key]["dtype"] == "string":
            return values.tolist() if isinstance(values, np.ndarray) else str(values)
        tensor = torch.as_tensor(np.array(values))  # a copy: samples never alias the column store
        return tensor.float() if tensor.is_floating_point() else tensor

    def _image(self, frames: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
        if self.image_transforms is not None:
            tensor = self.image_transforms(tensor)
        return tensor

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} frames")
        row = int(i) % len(self)
        episode = int(self._episode_of_row[row])
        ep_start = self._row_start[episode]
        ep_end = ep_start + self.meta.episodes[episode]["length"]
        item: dict[str, Any] = {}
        windows: dict[str, np.ndarray] = {}
        for key, deltas in self.delta_indices.items():
            query = row + deltas
            item[f"{key}_is_pad"] = torch.from_numpy((query < ep_start) | (query >= ep_end))
            windows[key] = np.clip(query, ep_start, ep_end - 1)
        for key, column in self._columns.items():
            item[key] = self._to_tensor(key, column[windows[key]] if key in windows else column[row])
        for key, encoded in self._images.items():
            rows = windows.get(key, np.array([row]))
            frames = self._image(np.stack([decode_image(encoded[r], key) for r in rows]))
            item[key] = frames if key in windows else frames[0]
        for key in self.meta.video_keys:
            rows = windows.get(key, np.array([row]))
            frames = self._image(self._decode(key, episode, self._columns["timestamp"][rows]))
            item[key] = frames if key in windows else frames[0]
        item["task"] = self.meta.tasks[int(self._columns["task_index"][row])]
        return item

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"], state["_inherited"] = {}, []  # containers are per process
        return state
