"""Where the GPU memory at a run's peak goes, from the CUDA caching allocator's own history.

`history()` records every allocation and free (with its Python stack) through
torch.cuda.memory._record_memory_history; `peak_report(start, kinds, root)` replays that trace to the moment
of the highest allocated total after event `start` (`trace_length()` taken where the measured part begins),
and describes the blocks live then: those holding a tensor the caller names (trainable parameters, gradients,
optimizer state, …) summed per kind, every other block summed by where it was allocated (the innermost
frames under `root`, and the innermost library frame inside them), and the largest blocks one by one.
The replayed peak should equal the allocator's max_memory_allocated over the same span (report both).
CUDA only; it imports only torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

MAX_EVENTS = 2_000_000  # the allocator's trace is a ring buffer: room for a build and a few steps
TOP = 20


@contextlib.contextmanager
def history() -> Iterator[None]:
    torch.cuda.memory._record_memory_history(context="alloc", stacks="python", max_entries=MAX_EVENTS)
    try:
        yield
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)


def _trace() -> list[dict]:
    return torch.cuda.memory._snapshot()["device_traces"][torch.cuda.current_device()]


def trace_length() -> int:
    """Events recorded so far on the current device: the measured part starts after this one."""
    return len(_trace())


def _replay(trace: list[dict], start: int, stop: int | None = None) -> tuple[dict[int, dict], int, int]:
    """-> (blocks live after event `stop` (the end if None) by address, peak bytes at or after `start`, its event)."""
    live: dict[int, dict] = {}
    total, peak, at = 0, 0, -1
    for i, event in enumerate(trace if stop is None else trace[: stop + 1]):
        if event["action"] == "alloc":
            live[event["addr"]] = event
            total += event["size"]
        elif event["action"] == "free_completed" and event["addr"] in live:
            total -= live.pop(event["addr"])["size"]
        if i >= start and total > peak:
            peak, at = total, i
    return live, peak, at


def _where(frames: list[dict], roots: tuple[str, ...]) -> tuple[str, str]:
    """(the two innermost frames under a root, the innermost library frame inside them), as `file:line fn`."""
    own: list[str] = []
    lib = ""
    for frame in frames:  # innermost first
        name = frame["filename"]
        if "site-packages/" in name:  # a library (also when the venv lives in the repository)
            if not own and not lib:
                lib = f"{name.split('site-packages/')[-1]}:{frame['line']} {frame['name']}"
            continue
        root = next((r for r in roots if name.startswith(r)), None)
        if root is not None:
            own.append(f"{name[len(root):].lstrip('/')}:{frame['line']} {frame['name']}")
            if len(own) == 2:
                break
    return " < ".join(own) or "?", lib or "?"


def _mb(size: int) -> float:
    return round(size / 2**20, 2)


def peak_report(start: int, kinds: dict[str, list[torch.Tensor]], root: Path) -> dict:
    """The live blocks at the peak after event `start`; `kinds` names tensors by what they are."""
    trace = _trace()
    roots = tuple(dict.fromkeys((str(root), str(root.resolve()))))  # frames name files as they were imported
    _, peak, at = _replay(trace, start)
    live, _, _ = _replay(trace, start, stop=at)
    kind_of = {t.untyped_storage().data_ptr(): kind for kind, tensors in kinds.items() for t in tensors}
    by_kind: dict[str, int] = {}
    by_site: dict[tuple[str, str], list[int]] = {}
    largest = []
    for addr, block in live.items():
        kind = kind_of.get(addr)
        where, lib = _where(block.get("frames", []), roots)
        if kind is not None:
            by_kind[kind] = by_kind.get(kind, 0) + block["size"]
        else:
            site = by_site.setdefault((where, lib), [0, 0])
            site[0] += block["size"]
            site[1] += 1
        largest.append((block["size"], kind or "other", where, lib))
    by_kind["other"] = sum(size for size, _ in by_site.values())
    largest.sort(reverse=True)
    peak_frames = _where(trace[at].get("frames", []), roots) if at >= 0 else ("?", "?")
    return {
        "trace_peak_gb": round(peak / 2**30, 3), "events": len(trace), "truncated": len(trace) >= MAX_EVENTS,
        "peak_event": {"index": at - start, "action": trace[at]["action"] if at >= 0 else None,
                       "mb": _mb(trace[at]["size"]) if at >= 0 else 0, "where": peak_frames[0], "lib": peak_frames[1]},
        "live_blocks": len(live),
        "by_kind_mb": {k: _mb(v) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "other_by_site": [{"mb": _mb(size), "blocks": n, "where": where, "lib": lib}
                          for (where, lib), (size, n) in sorted(by_site.items(), key=lambda kv: -kv[1][0])[:TOP]],
        "largest": [{"mb": _mb(size), "kind": kind, "where": where, "lib": lib}
                    for size, kind, where, lib in largest[:TOP]],
    }
