"""Decoding a dataset's camera frames once — in parallel, in bounded chunks, resized — into memory or a file.

`fill_frames` is the one decode loop of the frame cache: `--num_workers` episodes decode at a time, each
in chunks of `chunk` frames, so the fill's own memory is workers x chunk frames whatever the episode
length. `DiskFrames` is the disk tier: frames too many for `--cache_max_gb` go to a uint8 file under the
cache dir (see `frames_cache_root`), filled once and reused by later runs with the same dataset,
episodes and image size; batches read rows back with pread, not mmap, because mapped pages count in the
process's RSS and a file larger than RAM would then look like (and press like) resident memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from apprentice.policies.image_resize import resize_frames
from apprentice.train.config import TrainError

FORMAT_VERSION = 1  # bump when the file layout or the resize changes: old cache dirs are then ignored


def frames_cache_root(cache_dir: str | None = None) -> Path:
    """Where decoded-frame caches live: --cache_dir, else $HF_DATASETS_CACHE/apprentice_frames
    (HF_DATASETS_CACHE defaults to $HF_HOME/datasets, as the `datasets` library has it)."""
    from apprentice.dataset.hub import hf_datasets_cache

    return Path(cache_dir).expanduser() if cache_dir else hf_datasets_cache() / "apprentice_frames"


def cache_key(dataset: Any, key: str, shape: tuple[int, int, int]) -> str:
    """Names one camera's cache: the dataset's identity (path, info.json, each source file's size and
    mtime), the selected episodes and the stored image size — a re-recorded or edited dataset gets a new one."""
    store = dataset.store
    root = getattr(store, "root", None)
    rels = {"meta/info.json"}
    for e in dataset.episodes:
        ep = dataset.meta.episodes[e]
        rels.add(dataset.meta.episode_video_rel(ep, key) if key in dataset.meta.video_keys
                 else dataset.meta.episode_data_rel(ep))
    files = []
    for rel in sorted(rels):
        if root is not None:
            st = (Path(root) / rel).stat()
            files.append([rel, st.st_size, st.st_mtime_ns])
        else:
            files.append([rel])
    ident = {
        "version": FORMAT_VERSION,
        "source": str(Path(root).resolve()) if root is not None else store.describe(""),
        "files": files,
        "episodes": list(dataset.episodes),
        "camera": key,
        "shape": list(shape),
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    return f"{key.removeprefix('observation.images.')}-{shape[1]}x{shape[2]}-{digest}"


def fill_frames(
    dataset: Any,
    key: str,
    shape: tuple[int, int, int],
    starts: list[int],
    write: Callable[[int, Tensor], None],
    workers: int,
    chunk: int,
) -> None:
    """Decode every selected episode of camera `key`, resize to `shape` (C, H, W), and `write(row, frames)`
    each (n, C, H, W) uint8 chunk at its row; `workers` episodes at a time (decoding releases the GIL)."""
    c, h, w = shape
    workers = max(1, workers)
    # One decoder thread per episode when several decode at once; FFmpeg's own threads otherwise.
    threads = None if workers == 1 else max(1, (os.cpu_count() or 1) // workers)
    native = dataset.features[key]

    def one(job: tuple[int, int]) -> None:
        episode, row = job
        length = int(dataset.meta.episodes[episode]["length"])
        done = 0
        for frames in dataset.episode_frame_chunks(episode, key, chunk, threads=threads):
            if frames.shape[-1] != c:
                raise TrainError(f"{key} episode {episode}: decoded {frames.shape[-1]} channels, expected {c}")
            chw = resize_frames(torch.from_numpy(frames).permute(0, 3, 1, 2), (h, w))
            write(row + done, chw.contiguous())
            done += len(frames)
        if done != length:
            raise TrainError(
                f"{key} episode {episode}: decoded {done} frames, meta/episodes says {length} "
                f"(stored shape {native['shape']}); run `apprentice dataset verify`"
            )

    jobs = list(zip(dataset.episodes, starts))
    if workers == 1:
        for job in jobs:
            one(job)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="apprentice-decode") as pool:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One filler per cache dir across processes (DDP ranks, two runs): the others wait, then reuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class DiskFrames:
    """(N, C, H, W) uint8 frames in one file; `frames[idx]` reads the rows of an index tensor (any shape)."""

    def __init__(self, path: Path, shape: tuple[int, int, int, int], read_threads: int = 1) -> None:
        self.path, self.shape = path, tuple(shape)
        self.frame_bytes = int(np.prod(shape[1:]))
        self.fd = os.open(path, os.O_RDONLY)
        self.pool = ThreadPoolExecutor(read_threads, thread_name_prefix="apprentice-read") if read_threads > 1 else None

    @classmethod
    def open_or_fill(
        cls, dataset: Any, key: str, shape: tuple[int, int, int], starts: list[int], root: Path, workers: int,
        chunk: int, log: Callable[[str], None] = lambda _: None,
    ) -> DiskFrames:
        """The cache file of (dataset, episodes, camera, shape) under `root`, decoded into it first if absent."""
        n = int(dataset.num_frames)
        directory = root / cache_key(dataset, key, shape)
        data, meta = directory / "frames.u8", directory / "meta.json"
        need = n * int(np.prod(shape))
        with _locked(directory.with_suffix(".lock")):
            if not (meta.is_file() and data.is_file() and data.stat().st_size == need):
                directory.mkdir(parents=True, exist_ok=True)
                free = _free_disk(directory)
                if free < need * 1.02:
                    raise TrainError(
                        f"the {key} frame cache needs {need / 2**30:.1f} GiB on disk, {directory} has "
                        f"{free / 2**30:.1f} GiB free; point --cache_dir (or HF_DATASETS_CACHE) at a larger disk, "
                        "train at a smaller --policy.input_shapes, or use --dataset.streaming=true"
                    )
                log(f"decoding {n} frames of {key} into {data} ({need / 2**30:.2f} GiB, once)")
                partial = directory / "frames.u8.partial"
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.ftruncate(fd, need)
                    frame_bytes = int(np.prod(shape))

                    def write(row: int, frames: Tensor) -> None:
                        _pwrite_all(fd, frames.numpy(), row * frame_bytes)

                    fill_frames(dataset, key, shape, starts, write, workers, chunk)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(partial, data)
                meta.write_text(json.dumps({"frames": n, "shape": list(shape), "camera": key,
                                            "version": FORMAT_VERSION}))
            else:
                log(f"reusing the {key} frame cache {data}")
        return cls(data, (n, *shape), read_threads=max(1, workers))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Tensor) -> Tensor:
        flat = idx.reshape(-1).cpu().numpy()
        rows, inverse = np.unique(flat, return_inverse=True)
        buf = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        # Consecutive rows (an observation window, neighbouring samples) are one read.
        cut = np.flatnonzero(np.diff(rows) != 1) + 1
        runs = list(zip(np.concatenate([[0], cut]).tolist(), np.concatenate([cut, [len(rows)]]).tolist()))

        def read(run: tuple[int, int]) -> None:
            a, b = run
            _pread_all(self.fd, buf[a:b], int(rows[a]) * self.frame_bytes)

        if self.pool is not None and len(runs) > 1:
            list(self.pool.map(read, runs))
        else:
            for run in runs:
                read(run)
        out = torch.from_numpy(buf)
        if len(rows) != len(flat) or not np.array_equal(rows, flat):
            out = out[torch.from_numpy(inverse.reshape(-1))]
        return out.reshape(*idx.shape, *self.shape[1:])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _free_disk(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _pwrite_all(fd: int, array: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(array)).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _pread_all(fd: int, array: np.ndarray, offset: int) -> None:
    view = memoryview(array).cast("B")
    while view:
        n = os.preadv(fd, [view], offset)
        if n == 0:
            raise TrainError(f"frame cache file ended early at byte {offset}; delete its directory and rerun")
        view, offset = view[n:], offset + n
