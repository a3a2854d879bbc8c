"""Where the frame cache goes, within `--cache_max_gb`: GPU memory, host memory, or a file on disk.

Default budget (no flag): half the host's available memory (MemAvailable: free plus reclaimable page
cache) for a host cache, a third of the GPU's free memory for a cache on cuda (90% with
--cache_device=cuda) — the rest is the model's, the optimizer's and the batches'. `--cache_max_gb=X`
bounds both at X GiB (the GPU still at most 90% of its free memory; 0 = every frame on disk). Frames
that fit no memory budget go to disk: then host memory holds only the numeric columns, the prefetched
batches and the decode chunks, and that is checked against the same budget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from apprentice.train.config import TrainError

HOST_FRACTION = 0.5
GPU_FRACTION = 1 / 3
GIB = 2**30


def host_available_bytes() -> int:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping); free pages elsewhere."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class CachePlan:
    storage: str  # memory | disk
    device: torch.device  # where the cache's tensors live (cpu for disk)
    budget_bytes: int  # the memory the frame cache may take where it lives
    frames_bytes: int  # what all decoded frames take
    chunk_frames: int  # frames per decode chunk

    def describe(self) -> str:
        where = f"{self.device.type} memory" if self.storage == "memory" else "disk (read per batch)"
        return f"frame cache: {_size(self.frames_bytes)} of uint8 frames in {where}; budget {_size(self.budget_bytes)}"


def plan_cache(
    cache_device: str,
    cache_max_gb: float | None,
    device: torch.device,
    frames_bytes: int,
    frame_bytes: int,
    batch_bytes: int,
    workers: int,
    prefetch: int = 3,
) -> CachePlan:
    """Choose the cache's place: on the GPU when it fits the GPU budget, else host memory when it fits the
    host budget, else disk. Raises TrainError when even the disk path's buffers exceed the budget."""
    host = int(cache_max_gb * GIB) if cache_max_gb is not None else int(HOST_FRACTION * host_available_bytes())
    workers = max(1, workers)
    if device.type == "cuda" and cache_device in ("auto", "cuda"):
        free, _ = torch.cuda.mem_get_info(device)
        if cache_max_gb is not None:
            gpu = min(int(cache_max_gb * GIB), int(0.9 * free))
        else:  # --cache_device=cuda asks for the GPU: up to 90% of its free memory, as with an explicit bound
            gpu = int((0.9 if cache_device == "cuda" else GPU_FRACTION) * free)
        if frames_bytes <= gpu:
            return CachePlan("memory", device, gpu, frames_bytes, _chunk(host, frame_bytes, workers))
        if cache_device == "cuda":
            raise TrainError(
                f"--cache_device=cuda: the frames take {frames_bytes / GIB:.2f} GiB, the GPU budget is "
                f"{gpu / GIB:.2f} GiB; use --cache_device=auto (host memory or disk), a larger --cache_max_gb "
                "or a smaller --policy.input_shapes"
            )
    if frames_bytes <= host:
        return CachePlan("memory", torch.device("cpu"), host, frames_bytes, _chunk(host, frame_bytes, workers))
    # Disk: the batches in flight (prefetch queue, a pinned copy, the gather's buffers) and the decode
    # chunks are what stays in host memory.
    in_flight = (prefetch + 3) * batch_bytes
    chunk = _chunk(host - in_flight, frame_bytes, workers)
    # --cache_max_gb=0 asks for no frames in memory at all; the batches in flight are then the only use.
    if host > 0 and in_flight + workers * chunk * frame_bytes * 3 > host:
        raise TrainError(
            f"--cache_max_gb={cache_max_gb if cache_max_gb is not None else round(host / GIB, 3)} "
            f"({host / 2**20:.1f} MiB): even with the frames on disk, {prefetch + 3} batches of "
            f"{batch_bytes / 2**20:.2f} MiB and the decode buffers exceed it; raise --cache_max_gb, lower "
            "--batch_size or --num_workers, or train at a smaller --policy.input_shapes"
        )
    return CachePlan("disk", torch.device("cpu"), host, frames_bytes, chunk)


def _chunk(budget: int, frame_bytes: int, workers: int) -> int:
    """Frames per decode chunk: up to 32, and the workers' chunks (x3 for decode, resize and copy
    buffers) within a quarter of the budget."""
    return int(max(1, min(32, budget // max(1, 4 * 3 * workers * frame_bytes))))


def _size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 2**20:.1f} MiB"
