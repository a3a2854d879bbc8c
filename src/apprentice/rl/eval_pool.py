"""Seeded evaluation episodes in worker processes, so a learning curve costs the learner no wall time.

The HIL-SERL loop hands a snapshot of the policy (CPU copy, eval mode) and a list of seeds to
`EvalPool.submit`; workers (spawned, one env each, one torch thread) run the deterministic policy on those
seeds without interventions and return per-episode success, while training goes on. Results are
identical to `hilserl.evaluate` in the learner's process: same seeds, same deterministic actions.
"""

from __future__ import annotations

import ctypes
import io
import multiprocessing as mp
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

_ENV: Any = None


def _init(make_env: Callable[[], Any]) -> None:
    global _ENV
    if sys.platform == "linux":  # die with the learner, even a SIGKILLed one (no orphaned workers)
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    torch.set_num_threads(1)  # many workers share the box with the learners
    _ENV = make_env()


def _episodes(policy_bytes: bytes, seeds: list[int]) -> list[dict[str, Any]]:
    from apprentice.rl.episode import run_episode

    policy = torch.load(io.BytesIO(policy_bytes), weights_only=False, map_location="cpu").eval()
    out = []
    with torch.inference_mode():
        for s in seeds:
            stats = run_episode(_ENV, s, act=policy.select_action_numpy)[2]
            out.append({"seed": s, "success": bool(stats["success"]), "length": stats["length"],
                        "sum_reward": stats["sum_reward"]})
    return out


@dataclass
class PendingEval:
    """One evaluation point: the env step and wall time of its snapshot, and its chunks in flight."""

    env_step: int
    wall_s: float
    episodes: int
    futures: list[Future] = field(default_factory=list)

    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    def episodes_stats(self) -> list[dict[str, Any]]:
        """Per episode, in seed order: success, length, sum_reward (waits for the workers)."""
        rows = sorted((r for f in self.futures for r in f.result()), key=lambda r: r["seed"])
        return [{k: r[k] for k in ("success", "length", "sum_reward")} for r in rows]

    def success_rate(self) -> float:
        stats = self.episodes_stats()
        return sum(s["success"] for s in stats) / max(len(stats), 1)


class EvalPool:
    """`workers` spawned processes, each with its own env from `make_env` (a picklable callable)."""

    def __init__(self, make_env: Callable[[], Any], workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init,
                                         initargs=(make_env,))

    def submit(self, policy: torch.nn.Module, seeds: list[int], env_step: int, wall_s: float) -> PendingEval:
        buf = io.BytesIO()
        # A CPU snapshot: the learner keeps updating its own copy meanwhile.
        torch.save(_cpu_copy(policy), buf)
        data = buf.getvalue()
        chunks = [seeds[i::self.workers] for i in range(self.workers)]
        pending = PendingEval(env_step, wall_s, len(seeds))
        pending.futures = [self._pool.submit(_episodes, data, c) for c in chunks if c]
        return pending

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _cpu_copy(policy: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(policy).to("cpu").eval()
