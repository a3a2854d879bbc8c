"""`logs/rank_<r>.json`: what each training process held — where its frame cache lived, how many frames and
bytes it took, which share of the samples it trained on — and its peak GPU memory.

Rank 0 alone writes `train.jsonl`; under torchrun the other ranks would otherwise leave no trace of their
data loading or memory, which is what a multi-GPU user sizes a run by (each rank decodes every frame into
its own cache: the cache is replicated per GPU, the samples are sharded by the DistributedSampler).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

GIB = 2**30


def data_report(source: Any, dataset_frames: int, samples_per_epoch: int) -> dict[str, Any]:
    """Where this rank's training frames come from: its frame cache (memory or disk) or the streaming path."""
    cache = getattr(source, "cache", None)
    if cache is None:  # --dataset.streaming=true: DataLoader workers decode per sample, nothing is cached
        return {"path": "streaming", "frames_held": 0, "dataset_frames": dataset_frames,
                "samples_per_epoch": samples_per_epoch}
    held, nbytes = 0, 0
    for store in cache.frames.values():  # a uint8 tensor (memory) or DiskFrames, a file of (N, C, H, W) uint8
        held, nbytes = max(held, int(store.shape[0])), nbytes + math.prod(store.shape)
    return {
        "path": "cache",
        "storage": cache.storage,
        "device": str(cache.device),
        "frames_held": held,
        "dataset_frames": dataset_frames,
        "frames_gb": round(nbytes / GIB, 4),
        # every rank holds all frames today; a sharded cache would hold about dataset_frames / world
        "layout": "replicated" if held >= dataset_frames else "sharded",
        "samples_per_epoch": samples_per_epoch,  # this rank's share: the DistributedSampler shards the samples
    }


def write_rank_report(out: Path, rank: int, world: int, device: torch.device, data: dict[str, Any],
                      steps: int, wall_s: float) -> Path:
    """Write logs/rank_<rank>.json (every rank writes its own; no collective)."""
    report: dict[str, Any] = {"rank": rank, "world_size": world, "local_rank": int(os.environ.get("LOCAL_RANK", 0)),
                              "device": str(device), "steps": steps, "wall_s": round(wall_s, 3), "data": data}
    if device.type == "cuda":
        report["max_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / GIB, 3)
        report["max_gpu_reserved_gb"] = round(torch.cuda.max_memory_reserved(device) / GIB, 3)
    path = Path(out) / "logs" / f"rank_{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path


def read_rank_reports(output_dir: str | Path) -> list[dict[str, Any]]:
    """Every rank's report of a run, in rank order."""
    paths = (Path(output_dir) / "logs").glob("rank_*.json")
    return sorted((json.loads(p.read_text()) for p in paths), key=lambda r: r["rank"])
