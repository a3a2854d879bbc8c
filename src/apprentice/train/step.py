"""One training step — forward, backward, gradient clipping, optimizer step — run eagerly or captured.

At small batches (ACT/Diffusion at batch 8) a step is a few hundred small kernels and the GPU waits on
Python launching them. `--cuda_graphs=true` records the whole step once into a CUDA graph over static
input buffers and then replays it with one launch per step:

- the batch is copied into fixed buffers (uint8 frames; the float conversion happens inside the graph);
- the optimizer is the fused one with `capturable=True`, its learning rates are device tensors that the
  LR scheduler updates in place (`fill_`), so the schedule keeps working under replay;
- gradient clipping is the multi-tensor norm, whose result stays on the device: nothing in the step
  reads a value back to the host (the loss is summed on the device and read every `--log_freq` steps);
- random numbers (ACT's dropout and latent sample, Diffusion's noise, timesteps and random crop) come
  from the CUDA generator, which a graph advances on every replay: each step draws new ones.

The first `WARMUP` steps run eagerly (cuDNN autotuning, lazy inits, torch.compile's compilation),
then the graph is captured; those warm-up steps are real training steps, so the run is the same
sequence of updates either way. If capture fails, the run continues eagerly and says why once.

A policy whose step changes during training (VQ-BeT: the VQ-VAE phase, then the GPT phase) has
`train_phase()`, `set_graph_safe()` and `step_done()`: each phase gets its own warm-up and graph
(the old one is dropped when `train_phase()` changes), the policy runs its capturable code path,
and `step_done()` after every step lets it keep its host-side bookkeeping, which a replay skips.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from apprentice.train.config import TrainError
from apprentice.train.data import to_device

log = logging.getLogger("apprentice.train")

WARMUP = 3  # eager steps before capture (the PyTorch recipe: warm up on a side stream first)


class TrainStep:
    """`step(next_batch)` trains on `accum` micro-batches; `loss_sum` / `grad_norm` stay on the device."""

    def __init__(
        self,
        model: nn.Module,
        params: list[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device,
        image_keys: list[str],
        grad_clip_norm: float,
        bf16: bool = False,
        channels_last: bool = False,
        accum: int = 1,
        no_sync: Callable[[], Any] | None = None,
        capture: bool = False,
        static: bool | None = None,
        warmup: int = WARMUP,
    ) -> None:
        self.model, self.params, self.optimizer = model, params, optimizer
        self.device, self.image_keys = device, list(image_keys)
        self.grad_clip_norm, self.bf16, self.channels_last = grad_clip_norm, bf16, channels_last
        self.accum, self.no_sync = accum, no_sync
        self.capture = capture
        # Static buffers + tensor lrs without capture: the captured step's exact code path, runnable on CPU
        # (tests compare it with the eager one there).
        self.static_mode = capture if static is None else static or capture
        self.warmup = max(1, warmup) if self.static_mode else 0
        self.loss_sum = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, Tensor] | None = None
        self.steps_done = 0
        self.capture_s = 0.0
        self.captures = 0
        self.fallback: str | None = None
        self._side: torch.cuda.Stream | None = None
        # A phased policy (see the module docstring); torch.compile's wrapper forwards the attributes.
        self._phased = model if callable(getattr(model, "train_phase", None)) else None
        self.phase: object = None  # the phase the current warm-up / graph belongs to
        self._phase_steps = 0  # steps taken in it
        if self.static_mode:
            if accum != 1:
                raise TrainError("a captured step trains on one micro-batch: --gradient_accumulation_steps=1")
            self._tensor_lrs()
            if self._phased is not None:
                self._phased.set_graph_safe(True)

    # ------------------------------------------------------------------------------------ eager
    def _autocast(self) -> Any:
        if not self.bf16:
            return contextlib.nullcontext()
        # Autocast's weight-cast cache must be off under capture (the cached casts would go stale).
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not self.static_mode)

    def _eager(self, next_batch: Callable[[], dict[str, Tensor]]) -> None:
        for micro in range(self.accum):
            batch = to_device(next_batch(), self.device, self.image_keys, self.channels_last)
            last = micro == self.accum - 1
            sync = contextlib.nullcontext() if last or self.no_sync is None else self.no_sync()
            with sync:
                with self._autocast():
                    loss, _ = self.model(batch)
                (loss / self.accum).backward()
            self.loss_sum += loss.detach() / self.accum
        self._clip_and_step()
        self.optimizer.zero_grad(set_to_none=True)

    def _clip_and_step(self) -> None:
        # On CUDA one multi-tensor norm (foreach); error_if_nonfinite=False: no host read of the norm.
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip_norm, error_if_nonfinite=False)
        if hasattr(norm, "full_tensor"):  # FSDP: a DTensor norm over the shards
            norm = norm.full_tensor()
        self.grad_norm.copy_(norm)
        self.optimizer.step()

    # ----------------------------------------------------------------------------------- static
    def _tensor_lrs(self) -> None:
        for group in self.optimizer.param_groups:
            if not isinstance(group["lr"], Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
            if self.capture:
                group["capturable"] = True
            elif group.get("foreach"):
                group["foreach"] = False  # torch's multi-tensor Adam takes a tensor lr only when capturable

    def _body(self) -> None:
        """The step on the static buffers; what the graph records."""
        assert self.static is not None
        batch = to_device(self.static, self.device, self.image_keys, self.channels_last)
        with self._autocast():
            loss, _ = self.model(batch)
        loss.backward()
        self.loss_sum.add_(loss.detach())
        self._clip_and_step()

    def _load(self, raw: dict[str, Tensor]) -> None:
        if self.static is None:
            self.static = {k: torch.empty_like(v, device=self.device) for k, v in raw.items()}
        if raw.keys() != self.static.keys():
            raise TrainError(f"batch keys changed: {sorted(raw)} vs {sorted(self.static)}")
        for key, value in raw.items():
            buf = self.static[key]
            if value.shape != buf.shape:
                raise TrainError(
                    f"{key}: batch shape {tuple(value.shape)} differs from the captured {tuple(buf.shape)}; "
                    "a captured step needs full batches of one shape"
                )
            buf.copy_(value, non_blocking=True)

    def _capture(self) -> None:
        t0 = time.perf_counter()
        try:
            self.optimizer.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            # Grads are allocated inside the graph's pool on capture and overwritten on every replay.
            # thread_local: the prefetch thread's pinned-memory work must not invalidate the capture.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._body()
            self.graph = graph
            self.captures += 1
        except Exception as exc:  # eager keeps training; the reason is logged once and reported
            self.graph, self.fallback = None, f"{type(exc).__name__}: {exc}"[:400]
            self.optimizer.zero_grad(set_to_none=True)
            log.warning("CUDA graph capture failed, training continues eagerly: %s", self.fallback)
            self._reset_cuda_rng()
        self.capture_s += time.perf_counter() - t0

    def _reset_cuda_rng(self) -> None:
        # A capture that fails half-way can leave the CUDA generator in capture mode, and then every later
        # random draw fails ("Offset increment outside graph capture encountered unexpectedly", seen on the
        # H200 with VQ-BeT): the generator gets a fresh copy of its state (same seed and offset).
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        gen = torch.cuda.default_generators[index]
        try:
            gen.graphsafe_set_state(gen.clone_state())
        except (RuntimeError, NotImplementedError) as exc:
            log.warning("could not reset the CUDA generator after the failed capture: %s", exc)

    def __call__(self, next_batch: Callable[[], dict[str, Tensor]]) -> None:
        self.steps_done += 1
        if not self.static_mode:
            self._eager(next_batch)
        else:
            self._static(next_batch)
        if self._phased is not None:
            self._phased.step_done()

    def _static(self, next_batch: Callable[[], dict[str, Tensor]]) -> None:
        phase = self._phased.train_phase() if self._phased is not None else None
        if phase != self.phase:  # a new phase runs other kernels: warm up and capture again
            if self.graph is not None:
                log.info("training phase %r starts: re-capturing the CUDA graph", phase)
            self.graph, self.phase, self._phase_steps = None, phase, 0
        self._phase_steps += 1
        self._load(next_batch())
        if self.graph is not None:
            self.graph.replay()
            return
        # Eager on the static buffers: the warm-up steps (on a side stream, as capture wants), or the
        # whole run when capture is off or failed.
        if self.capture and self.fallback is None and self._side is None:
            self._side = torch.cuda.Stream()
        stream = self._side if self.capture and self.fallback is None else None
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            self.optimizer.zero_grad(set_to_none=True)
            self._body()
        if stream is not None:
            torch.cuda.current_stream().wait_stream(stream)
            if self._phase_steps >= self.warmup:
                self._capture()  # recorded now (nothing runs), first replayed by the next step

    @property
    def captured(self) -> bool:
        return self.graph is not None
