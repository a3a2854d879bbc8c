"""Training batches without a per-sample video decode.

LeRobot's trainer seeks into the mp4 for every sample of every batch; on a GPU that decode, not the
model, is the bottleneck. Here each episode of each camera is decoded once (`episode_frames`) into a
uint8 cache (N, 3, H, W) — 1/4 the bytes of float32 — and numeric features come whole from
`column()`. A batch is then an index gather (plus the delta-timestamp windows and padding masks
LeRobot computes), done on the GPU itself when the cache fits there. Images become float in [0, 1]
on the compute device.

`--dataset.streaming=true` keeps the per-sample path (a DataLoader over LeRobotDataset) for datasets
whose frames do not fit in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler

from apprentice.policies.image_resize import resize_frames, to_uint8
from apprentice.train.cache_plan import plan_cache
from apprentice.train.config import TrainError
from apprentice.train.frame_store import DiskFrames, fill_frames, frames_cache_root

REWARD = "next.reward"  # what reward-learning policies (TD-MPC) read; LeRobot's sim datasets' column


def _episode_spans(dataset: Any) -> tuple[list[int], np.ndarray]:
    """Length and first row of each selected episode, in the dataset's row order."""
    lengths = [int(dataset.meta.episodes[e]["length"]) for e in dataset.episodes]
    return lengths, np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def sample_rows(dataset: Any, drop_n_last_frames: int = 0) -> np.ndarray:
    """Rows a training sample may start at: never the last `drop_n_last_frames` of an episode, as LeRobot's
    EpisodeAwareSampler (Diffusion: their action windows would be mostly padding)."""
    lengths, starts = _episode_spans(dataset)
    return np.concatenate([np.arange(s, s + max(1, n - drop_n_last_frames)) for s, n in zip(starts, lengths)])


class FrameCache:
    """All numeric features of the selected episodes as tensors on `device`, and every camera's uint8
    frames (N, C, H, W) resized to `image_shapes` — in memory on `device` (storage="memory") or in a
    file under `cache_root` read back per batch (storage="disk", see frame_store.DiskFrames)."""

    def __init__(
        self,
        dataset: Any,
        numeric_keys: list[str],
        image_keys: list[str],
        delta_indices: dict[str, list[int]],
        drop_n_last_frames: int = 0,
        device: str | torch.device = "cpu",
        *,
        image_shapes: dict[str, tuple[int, int, int]] | None = None,
        storage: str = "memory",
        cache_root: Path | None = None,
        num_workers: int = 0,
        chunk_frames: int = 32,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.device = torch.device(device)
        if storage not in ("memory", "disk") or (storage == "disk" and self.device.type != "cpu"):
            raise TrainError(f"frame cache storage {storage!r} on {self.device}: use memory, or disk on cpu")
        self.storage = storage
        self.image_keys = list(image_keys)
        self.delta = {
            k: torch.tensor(v, dtype=torch.long, device=self.device) for k, v in delta_indices.items()
        }
        lengths, starts = _episode_spans(dataset)
        n = sum(lengths)
        self.ep_start = torch.from_numpy(np.repeat(starts, lengths)).to(self.device)
        self.ep_end = torch.from_numpy(np.repeat(starts + np.asarray(lengths), lengths)).to(self.device)
        self.sample_rows = torch.from_numpy(sample_rows(dataset, drop_n_last_frames)).to(self.device)
        self.columns: dict[str, Tensor] = {}
        for key in numeric_keys:
            col = np.asarray(dataset.column(key), dtype=np.float32)
            if len(col) != n:
                raise TrainError(
                    f"dataset column {key!r} has {len(col)} rows, episodes say {n}; "
                    "run `apprentice dataset verify`"
                )
            self.columns[key] = torch.from_numpy(col).to(self.device)
        self.shapes = cache_shapes(dataset, self.image_keys, image_shapes)
        self.frames: dict[str, Any] = {}
        pin = self.device.type == "cpu" and torch.cuda.is_available()
        for key in self.image_keys:
            shape = self.shapes[key]
            if storage == "disk":
                root = Path(cache_root) if cache_root is not None else frames_cache_root()
                self.frames[key] = DiskFrames.open_or_fill(
                    dataset, key, shape, starts.tolist(), root, num_workers, chunk_frames, log
                )
                continue
            # Allocated where it lives and filled chunk by chunk: a GPU cache never passes through a
            # host copy of all frames.
            cache = torch.empty((n, *shape), dtype=torch.uint8, device=self.device, pin_memory=pin)

            def write(row: int, frames: Tensor, cache: Tensor = cache) -> None:
                cache[row : row + len(frames)].copy_(frames)

            fill_frames(dataset, key, shape, starts.tolist(), write, num_workers, chunk_frames)
            self.frames[key] = cache

    @staticmethod
    def nbytes(
        dataset: Any, image_keys: list[str], image_shapes: dict[str, tuple[int, int, int]] | None = None
    ) -> int:
        """Bytes the frame cache of `dataset` will take (to choose its place before building it)."""
        shapes = cache_shapes(dataset, image_keys, image_shapes)
        return sum(dataset.num_frames * int(np.prod(shapes[k])) for k in image_keys)

    def close(self) -> None:
        for store in self.frames.values():
            if isinstance(store, DiskFrames):
                store.close()

    def __len__(self) -> int:
        return len(self.sample_rows)

    def _window(self, rows: Tensor, key: str) -> tuple[Tensor, Tensor | None]:
        deltas = self.delta.get(key)
        if deltas is None:
            return rows, None
        query = rows[:, None] + deltas[None, :]
        start, end = self.ep_start[rows][:, None], self.ep_end[rows][:, None]
        pad = (query < start) | (query >= end)
        return torch.minimum(torch.maximum(query, start), end - 1), pad

    def gather(self, sample_ids: Tensor) -> dict[str, Tensor]:
        """The batch for these sample ids; images stay uint8 (see `to_device`)."""
        rows = self.sample_rows[sample_ids.to(self.device)]
        batch: dict[str, Tensor] = {}
        for key, store in [*self.columns.items(), *self.frames.items()]:
            idx, pad = self._window(rows, key)
            batch[key] = store[idx]
            if pad is not None:
                batch[f"{key}_is_pad"] = pad
        return batch


def to_device(
    batch: dict[str, Tensor], device: torch.device, image_keys: list[str], channels_last: bool = False
) -> dict[str, Tensor]:
    """Move a batch to `device` (asynchronously from pinned memory) and make images float in [0, 1]."""
    out = {}
    for key, value in batch.items():
        if not isinstance(value, Tensor):  # task strings
            out[key] = value
            continue
        value = value.to(device, non_blocking=True)
        if key in image_keys:
            value = value.float().div_(255.0) if value.dtype == torch.uint8 else value
            if channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def cache_shapes(
    dataset: Any, image_keys: list[str], image_shapes: dict[str, tuple[int, int, int]] | None
) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) each camera is cached at: the policy's input shape, else the dataset's own."""
    out = {}
    for key in image_keys:
        h, w, c = _hwc(dataset.features[key])
        out[key] = tuple(int(d) for d in (image_shapes or {}).get(key, (c, h, w)))
    return out


def _hwc(feature: dict) -> tuple[int, int, int]:
    shape = list(feature["shape"])
    names = list(feature.get("names") or [])
    if names[:1] == ["channels"]:
        return shape[1], shape[2], shape[0]
    return shape[0], shape[1], shape[2]


class SampleOrder:
    """Which samples each step trains on: DistributedSampler's per-epoch shuffle (so DDP ranks see
    disjoint shards), addressable by step so a resumed run continues with the very same batches."""

    def __init__(
        self,
        n_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        # Each epoch's order goes to `device` once: a per-step host->GPU copy of the ids would stall the
        # CPU until the GPU drains, which on small batches costs more than the step itself.
        self.device = torch.device(device)
        self.sampler = DistributedSampler(
            range(n_samples),
            num_replicas=world_size,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=world_size > 1,
        )
        self.batch_size = batch_size
        self.per_epoch = len(self.sampler) // batch_size
        if self.per_epoch == 0:
            raise TrainError(
                f"--batch_size={batch_size} exceeds the {len(self.sampler)} training samples per "
                f"process; lower --batch_size or record more episodes"
            )

    def batches(self, start: int = 0) -> Iterator[Tensor]:
        """Sample-id batches from micro-batch number `start` on, forever (epoch after epoch)."""
        epoch, pos = divmod(start, self.per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            order = torch.tensor(list(self.sampler), dtype=torch.long).to(self.device)
            for j in range(pos, self.per_epoch):
                yield order[j * self.batch_size : (j + 1) * self.batch_size]
            epoch, pos = epoch + 1, 0


class Prefetcher:
    """Gathers the next batches on a background thread (index_select releases the GIL) while the GPU
    trains on the current one; the gathered CPU tensors are pinned, so the copy overlaps compute too."""

    def __init__(self, cache: FrameCache, order: Iterator[Tensor], depth: int = 3, start: int = 0) -> None:
        self.cache, self.order = cache, order
        self.position = start  # micro-batches handed out so far (the data position a checkpoint stores)
        self.pin = cache.device.type == "cpu" and torch.cuda.is_available()
        self.on_device = cache.device.type != "cpu"
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if not self.on_device:
            self.thread = threading.Thread(target=self._run, name="apprentice-prefetch", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        try:
            for ids in self.order:
                batch = self.cache.gather(ids)
                if self.pin:
                    batch = {k: v.pin_memory() for k, v in batch.items()}
                while not self.stop.is_set():
                    try:
                        self.queue.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
        except Exception as exc:  # surfaced to the training loop, never swallowed
            self.queue.put(exc)

    def next(self) -> dict[str, Tensor]:
        self.position += 1
        if self.on_device:  # gathers on the GPU are asynchronous kernels already
            return self.cache.gather(next(self.order))
        item = self.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.cache.close()


class StreamingBatches:
    """`--dataset.streaming=true`: samples decoded one by one by DataLoader workers (low memory, slower)."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        num_workers: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_n_last_frames: int = 0,
        image_shapes: dict[str, tuple[int, int, int]] | None = None,
    ) -> None:
        if image_shapes:
            dataset = ResizedSamples(dataset, image_shapes)
        if drop_n_last_frames:  # the same frames as the cache path
            dataset = torch.utils.data.Subset(dataset, sample_rows(dataset, drop_n_last_frames).tolist())
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.per_epoch = len(self.sampler) // batch_size
        if self.per_epoch == 0:
            raise TrainError(f"--batch_size={batch_size} exceeds the {len(self.sampler)} training samples")
        self._iter: Iterator[dict[str, Any]] | None = None
        self._epoch = 0

    def skip_to(self, micro_batch: int) -> None:
        self.position = micro_batch
        self._epoch = micro_batch // self.per_epoch
        self._iter = self._epoch_iter(skip=micro_batch % self.per_epoch)

    def _epoch_iter(self, skip: int = 0) -> Iterator[dict[str, Any]]:
        while True:
            self.sampler.set_epoch(self._epoch)
            loader = DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=self.sampler,
                drop_last=True,
                num_workers=self.num_workers,
                pin_memory=torch.cuda.is_available(),
                persistent_workers=False,
            )
            for i, batch in enumerate(loader):
                if i >= skip:
                    yield {k: v for k, v in batch.items() if isinstance(v, Tensor)}
            self._epoch, skip = self._epoch + 1, 0

    def next(self) -> dict[str, Tensor]:
        if self._iter is None:
            self.skip_to(0)
        self.position += 1
        return next(self._iter)

    def close(self) -> None:
        self._iter = None


class ResizedSamples(torch.utils.data.Dataset):
    """The per-sample path at the policy's image size: each sample's frames resized exactly as the cache's
    (through uint8, policies.image_resize), in the DataLoader workers."""

    def __init__(self, dataset: Any, image_shapes: dict[str, tuple[int, int, int]]) -> None:
        self.dataset, self.image_shapes = dataset, image_shapes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.dataset[i]
        for key, (_, h, w) in self.image_shapes.items():
            if key in item and tuple(item[key].shape[-2:]) != (h, w):
                item[key] = resize_frames(to_uint8(item[key]), (h, w)).float().div_(255.0)
        return item


def apply_input_shapes(
    inputs: dict[str, Any], shapes: dict[str, list[int]] | None, flag: str = "--policy.input_shapes"
) -> dict[str, Any]:
    """The policy's input features with `--policy.input_shapes.<camera>=[C,H,W]` applied to its cameras."""
    from apprentice.policies import PolicyFeature

    out = dict(inputs)
    for key, shape in (shapes or {}).items():
        feature = inputs.get(key)
        if feature is None or feature.type != "VISUAL":
            cameras = [k for k, f in inputs.items() if f.type == "VISUAL"]
            raise TrainError(f"{flag}.{key}: {key} is not a camera of this dataset; cameras: {cameras}")
        if int(shape[0]) != int(feature.shape[0]):
            raise TrainError(
                f"{flag}.{key}={list(shape)}: the dataset's frames have {feature.shape[0]} channels; "
                f"keep C={feature.shape[0]} and change only H, W"
            )
        out[key] = PolicyFeature("VISUAL", tuple(int(d) for d in shape))
    return out


def sample_deltas(config: Any) -> dict[str, list[int]]:
    """Frame offsets of each key of a training sample: actions, observations, and rewards (TD-MPC)."""
    deltas = {"action": list(config.action_delta_indices)}
    if config.observation_delta_indices:
        deltas.update({k: list(config.observation_delta_indices) for k in config.input_features})
    if config.reward_delta_indices is not None:
        deltas[REWARD] = list(config.reward_delta_indices)
    return deltas


def build_frame_cache(cfg: Any, ds: Any, config: Any, device: torch.device, log: Callable[[str], None]) -> FrameCache:
    """The FrameCache for this run: cameras at the policy's input size, placed per `plan_cache`."""
    image_keys = list(config.image_features)
    deltas = sample_deltas(config)
    numeric = list(dict.fromkeys(k for k in [*config.input_features, *config.output_features, *deltas]
                                 if k not in image_keys))
    if getattr(config, "uses_language", False) or getattr(config, "uses_task", False):  # language policies
        numeric.append("task_index")
    shapes = {k: tuple(f.shape) for k, f in config.image_features.items()}
    native = max((int(np.prod(_hwc(ds.features[k]))) for k in image_keys), default=1)
    window = {k: len(v) for k, v in deltas.items()}
    batch_bytes = cfg.batch_size * sum(int(np.prod(shapes[k])) * window.get(k, 1) for k in image_keys)
    plan = plan_cache(cfg.cache_device, cfg.cache_max_gb, device, FrameCache.nbytes(ds, image_keys, shapes),
                      native, batch_bytes, cfg.num_workers)
    log(plan.describe())
    return FrameCache(ds, numeric, image_keys, deltas, getattr(config, "drop_n_last_frames", 0), plan.device,
                      image_shapes=shapes, storage=plan.storage, cache_root=frames_cache_root(cfg.cache_dir),
                      num_workers=cfg.num_workers, chunk_frames=plan.chunk_frames, log=log)

