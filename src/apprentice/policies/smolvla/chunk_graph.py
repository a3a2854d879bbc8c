"""SmolVLA's chunk sampling (prefix once, then `num_steps` Euler expert steps) replayed as one CUDA graph.

Eagerly a chunk is ~13 000 small kernels at batch 1 (the lead's H200 profile: 268 ms, of which the GPU
was busy for a small part; the rest is Python launching them). `ChunkGraph` records the whole sample
once per input signature over static buffers and replays it with one launch:

- the inputs (resized images, masks, language tokens padded to `tokenizer_max_length`, state, the starting
  noise) are copied into the graph's buffers; the noise is drawn outside, so the graph draws no random
  numbers and the same noise gives the same chunk as the eager path;
- nothing in the sample reads a value back to the host (masks are additive, positions are cumsums);
- autocast (a caller's bf16) is part of the signature and re-entered with its weight-cast cache off, so
  the graph never reads a cast made outside it;
- warm-up runs on a side stream before capture (cuBLAS/cuDNN workspaces and lazy initialisation), as
  PyTorch's recipe asks.

A capture that fails raises `PolicyError` saying so and how to run eagerly (`policy.cuda_graphs = False`):
it never falls back silently. RTC guidance in its identity-Jacobian form (lerobot's) is recorded too: its
prefix and weights (`PreparedRTC`) are two more static inputs, so a guided chunk takes as long as a plain
one and real-time chunking does not itself delay the chunk it smooths; full_jacobian/debug guidance and
CPU inference run the eager path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from apprentice.policies.config import PolicyError
from apprentice.policies.rtc import PreparedRTC

Sampler = Callable[..., Tensor]  # (images, masks, tokens, token_mask, state, noise, rtc) -> chunk
MAX_GRAPHS = 4  # signatures kept (batch sizes / precisions); each holds its own memory pool
WARMUP = 2


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: list[Tensor]
    output: Tensor


class ChunkGraph:
    """`graph(model, images, masks, tokens, token_mask, state, noise[, rtc])` -> the chunk, from a graph."""

    def __init__(self) -> None:
        self.graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self.captures = 0

    def __call__(
        self, model: nn.Module, images: list[Tensor], masks: list[Tensor], tokens: Tensor, token_mask: Tensor,
        state: Tensor, noise: Tensor, rtc: PreparedRTC | None = None,
    ) -> Tensor:
        """`model.sample(images, masks, tokens, token_mask, state, noise, rtc)`, from the graph of this
        signature; guided and plain chunks are separate signatures."""
        flat = [*images, *masks, tokens, token_mask, state, noise]
        if rtc is not None:
            flat += [rtc.prefix, rtc.weights]
        n = len(images)
        guidance = None if rtc is None else rtc.max_guidance_weight  # recorded into the graph as a constant
        device = noise.device
        amp = torch.is_autocast_enabled(device.type)
        amp_dtype = torch.get_autocast_dtype(device.type) if amp else None
        # The graph reads the weights at the addresses it was recorded with: weights moved or re-cast since
        # (.to(), store_frozen_in) get a new graph (~0.1 ms to check ~600 tensors).
        weights = tuple(t.data_ptr() for t in (*model.parameters(), *model.buffers()))
        key = (n, guidance, tuple((tuple(x.shape), x.dtype) for x in flat), amp, amp_dtype,
               torch.backends.cuda.matmul.allow_tf32, weights)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self._capture(model.sample, flat, n, amp_dtype, guidance)
            self.graphs[key] = entry
            while len(self.graphs) > MAX_GRAPHS:
                self.graphs.popitem(last=False)
        else:
            self.graphs.move_to_end(key)
            for buf, x in zip(entry.inputs, flat):
                buf.copy_(x)
        with torch.cuda.device(device):
            entry.graph.replay()
            return entry.output.clone()  # the next replay overwrites the buffer

    @staticmethod
    def _run(
        sampler: Sampler, flat: list[Tensor], n: int, amp_dtype: torch.dtype | None, guidance: float | None
    ) -> Tensor:
        inputs = flat[2 * n : 2 * n + 4]  # tokens, token_mask, state, noise
        rtc = None if guidance is None else PreparedRTC(flat[-2], flat[-1], guidance)
        with torch.autocast("cuda", dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None,
                            cache_enabled=False):
            return sampler(flat[:n], flat[n : 2 * n], *inputs, rtc)

    def _capture(
        self, sampler: Sampler, flat: list[Tensor], n: int, amp_dtype: torch.dtype | None, guidance: float | None
    ) -> _Captured:
        static = [x.clone() for x in flat]
        try:
            with torch.cuda.device(static[-1].device):
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(WARMUP):
                        self._run(sampler, static, n, amp_dtype, guidance)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: with asynchronous inference the chunk is sampled on a worker thread while
                # other threads may touch CUDA; only this thread's calls must be capture-safe.
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    output = self._run(sampler, static, n, amp_dtype, guidance)
        except Exception as exc:  # one clear error: capture is never silently replaced by the eager path
            raise PolicyError(
                f"smolvla: recording the chunk sampler as a CUDA graph failed ({type(exc).__name__}: {exc}); "
                "set policy.cuda_graphs = False to sample eagerly, and report this"
            ) from exc
        self.captures += 1
        return _Captured(graph, static, output)
