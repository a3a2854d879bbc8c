"""Fast construction of full-size random-weight models, and progressive reporting, for the VLA benchmarks.

Why: building a model the ordinary way allocates every parameter on the CPU in float32 and draws it twice
from the CPU generator (nn.Linear's kaiming_uniform_ in the constructor, then transformers' normal_ in
`post_init`), and torch's CPU generator runs on one thread. Measured on this 2-core box: SmolVLM2-500M
(507 M parameters) took 41.7 s (25.6 s uniform_ + 15.0 s normal_), i.e. ~0.08 s per million parameters, so
PaliGemma-3B + expert takes ~5 min per build before `.to(cuda)` — longer than the benchmarks' timeouts.

`fast_build(device)` fixes both:
- parameters are created directly on `device` (`with torch.device(device)`), so on CUDA the stock init runs on
  the GPU's generator (milliseconds for 3.5 B values) and the weights are exactly the stock random init;
- on the CPU, where there is no fast generator, the random fills (`Tensor.uniform_` / `Tensor.normal_`, which
  every torch and transformers init function ends in) copy from one pool of 2^20+7 i.i.d. draws at a random
  offset, scaled to the distribution asked for. Each tensor keeps its init's mean and std (so activations have
  their usual scale and losses are finite); values repeat only with the pool's period. Constants (ones_,
  zeros_) are untouched. That is a memory copy instead of generator work: ~20x faster.

Used by the parent benchmark and by the lerobot-side workers (it imports only torch, so any interpreter can).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

POOL_SIZE = 2**20 + 7  # odd, so rows of power-of-two widths do not line up with the pool's period
_pools: dict[str, torch.Tensor] = {}


def _pool(kind: str, device: torch.device) -> torch.Tensor:
    key = f"{kind}:{device}"
    if key not in _pools:
        g = torch.Generator().manual_seed(0)
        draw = torch.randn(POOL_SIZE, generator=g) if kind == "normal" else torch.rand(POOL_SIZE, generator=g)
        _pools[key] = draw.to(device)
    return _pools[key]


def _fill_from_pool(t: torch.Tensor, kind: str, scale: float, shift: float) -> torch.Tensor:
    """t <- pool[offset:] (tiled) * scale + shift, in place."""
    flat = t.view(-1)
    pool = _pool(kind, t.device)
    offset = int(torch.randint(POOL_SIZE, ()).item())
    i, n = 0, flat.numel()
    base = torch.tensor(shift, dtype=t.dtype, device=t.device)
    with torch.no_grad():
        while i < n:  # one pass: dst = shift + scale * pool
            k = min(POOL_SIZE - offset, n - i)
            torch.add(base, pool[offset : offset + k].to(t.dtype), alpha=scale, out=flat[i : i + k])
            i, offset = i + k, 0
    return t


@contextlib.contextmanager
def fast_build(device: str | torch.device) -> Iterator[None]:
    """Construct modules inside this block directly on `device`; on the CPU with pooled random fills."""
    device = torch.device(device)
    if device.type != "cpu":
        with torch.device(device):
            yield
        return
    normal, uniform = torch.Tensor.normal_, torch.Tensor.uniform_

    def pooled_normal(self: torch.Tensor, mean: float = 0.0, std: float = 1.0, *, generator: Any = None):
        if not self.is_contiguous() or self.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            return normal(self, mean, std, generator=generator)
        return _fill_from_pool(self, "normal", std, mean)

    def pooled_uniform(self: torch.Tensor, a: float = 0.0, b: float = 1.0, *, generator: Any = None):
        if not self.is_contiguous() or self.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            return uniform(self, a, b, generator=generator)
        return _fill_from_pool(self, "uniform", b - a, a)

    torch.Tensor.normal_, torch.Tensor.uniform_ = pooled_normal, pooled_uniform  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.normal_, torch.Tensor.uniform_ = normal, uniform  # type: ignore[method-assign]


def progress(message: str) -> None:
    """A `# ...` progress line on stderr, flushed at once (a run cut by its timeout still shows how far it got)."""
    print(f"# {message}", file=sys.stderr, flush=True)


def write_partial(path: Path | None, result: dict) -> None:
    """Rewrite the JSON result file (atomically) after each finished part, and echo the part on stderr."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
