"""Where one in-process HIL-SERL loop iteration spends its time, without the env: SAC updates/s at
`--batch-size` x `--utd-ratio` for the state PandaPickCube shapes (18-D state, 3-D cube position, 3
continuous actions + a 3-way discrete gripper, 256x256 MLPs), and per-part milliseconds: RLPD batch
sampling (`mixed_batch`), the update, one `select_action`, `add_episode` into a full buffer, and the
eval-worker policy snapshot. Synthetic frames (the math does not care what the numbers mean). Prints
one JSON object (also to `--json-out`, rewritten after every part).

    python benchmarks/sac_update_speed.py                          # CPU, 1 torch thread
    python benchmarks/sac_update_speed.py --device cuda --json-out sac_update_speed.json
    python benchmarks/sac_update_speed.py --profile 25             # + the top cProfile rows of the update
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import io
import json
import pstats
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from apprentice.policies import make_config, make_policy
from apprentice.policies.sac import SACAlgorithm
from apprentice.rl.hilserl import PICKCUBE_POLICY
from apprentice.rl.replay import ReplayBuffer
from apprentice.rl.transitions import mixed_batch

STATE, ENV = "observation.state", "observation.environment_state"
OBS_KEYS = [ENV, STATE]
EPISODE = 100  # PandaPickCube's max_episode_steps


def episode(rng: np.random.Generator, steps: int = EPISODE) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = steps + 1  # the final observation too
    action = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    action[:, 3] = rng.integers(0, 3, n)
    frames = {
        STATE: rng.normal(size=(n, 18)).astype(np.float32), ENV: rng.normal(size=(n, 3)).astype(np.float32),
        "action": action, "next.reward": (rng.random(n) < 0.05).astype(np.float32),
        "next.done": rng.random(n) < 0.01, "complementary_info.is_intervention": np.zeros(n, np.float32),
        "complementary_info.discrete_penalty": np.zeros(n, np.float32),
    }
    return frames, np.arange(n) < steps


def make_algorithm(device: str, utd_ratio: int) -> SACAlgorithm:
    fields = {**PICKCUBE_POLICY, "utd_ratio": utd_ratio, "device": device,
              "input_features": {ENV: {"type": "ENV", "shape": [3]}, STATE: {"type": "STATE", "shape": [18]}},
              "output_features": {"action": {"type": "ACTION", "shape": [3]}}}
    stats = {STATE: {"min": -3 * torch.ones(18), "max": 3 * torch.ones(18)},
             ENV: {"min": -3 * torch.ones(3), "max": 3 * torch.ones(3)},
             "action": {"min": -torch.ones(3), "max": torch.ones(3)}}
    return SACAlgorithm(make_policy(make_config("sac", **fields), stats), device)


def timed(fn: Any, n: int, sync: Any, blocks: int = 5) -> float:
    """Milliseconds per call: the best of `blocks` blocks of n // blocks calls, each timed until the device
    has finished them (the best block, as the 2-core machine here is shared and its noise only adds)."""
    return _timed(fn, n, sync, blocks, time.perf_counter)


def timed_cpu(fn: Any, n: int, sync: Any, blocks: int = 5) -> float:
    """The same in this process's CPU time: what the host itself spends, whatever else runs beside it."""
    return _timed(fn, n, sync, blocks, time.process_time)


def _timed(fn: Any, n: int, sync: Any, blocks: int, clock: Any) -> float:
    best = float("inf")
    per = max(n // blocks, 1)
    for _ in range(blocks):
        sync()
        t0 = clock()
        for _ in range(per):
            fn()
        sync()
        best = min(best, (clock() - t0) * 1e3 / per)
    return best


# Ops that only make a new view of a tensor (no kernel on CUDA), and the profiler's markers.
METADATA_OPS = {"t", "detach", "view", "slice", "expand", "squeeze", "unsqueeze", "select", "alias", "as_strided",
                "transpose", "permute", "_unsafe_view", "split", "unbind", "narrow", "lift_fresh",
                "_record_function_enter_new", "_record_function_exit"}


class OpCounter(TorchDispatchMode):
    """Counts the aten ops one call dispatches (forward, backward, optimizer), those that compute (on CUDA
    each is a kernel launch: the update's cost there is about their number times the launch overhead), and
    the host reads among them (`_local_scalar_dense`: `.item()`, `float(t)`; on CUDA a sync)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.compute_ops = self.host_reads = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        self.compute_ops += func.overloadpacket.__name__ not in METADATA_OPS
        self.host_reads += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--utd-ratio", type=int, default=2)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--online-frames", type=int, default=20_000, help="online buffer fill (episodes of 101)")
    ap.add_argument("--add-frames", type=int, default=100_000, help="buffer size for the add_episode timing")
    ap.add_argument("--profile", type=int, default=0, help="print this many cProfile rows of the update")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--budget-s", type=int, default=300, help="wall budget: past it, stop with what was measured")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    report: dict[str, Any] = {"benchmark": "sac_update_speed", "device": args.device, "threads": args.threads,
                              "batch_size": args.batch_size, "utd_ratio": args.utd_ratio}

    def write() -> None:
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=1))

    def out_of_time(*_: Any) -> None:
        report["cut_at_budget_s"] = args.budget_s
        write()
        print(json.dumps(report))
        raise SystemExit(0)

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.budget_s)

    algo = make_algorithm(args.device, args.utd_ratio)
    offline, online = ReplayBuffer(None), ReplayBuffer(None)
    for _ in range(10):
        offline.add_episode(*episode(rng))
    for _ in range(max(1, args.online_frames // (EPISODE + 1))):
        online.add_episode(*episode(rng))
    n = args.batch_size * args.utd_ratio

    def sample() -> dict[str, torch.Tensor]:
        return mixed_batch(online, offline, n, OBS_KEYS, rng)

    # The loop's update reads nothing back (stats=False); the pre-speed-work update had no such flag.
    quiet = {"stats": False} if "stats" in inspect.signature(algo.update).parameters else {}

    def update(b: dict[str, torch.Tensor]) -> None:
        algo.update(b, **quiet)

    batch = sample()
    for _ in range(5):  # warm-up (allocator, lazy init)
        algo.update(sample())
    report["sample_ms"] = round(timed(sample, args.updates, sync), 3)
    report["update_ms"] = round(timed(lambda: update(batch), args.updates, sync), 3)
    report["sample_and_update_ms"] = round(timed(lambda: update(sample()), args.updates, sync), 3)
    report["updates_per_s"] = round(1e3 / report["sample_and_update_ms"], 1)
    report["update_cpu_ms"] = round(timed_cpu(lambda: update(batch), args.updates, sync), 3)
    with OpCounter() as count:
        update(batch)
    report["aten_ops_per_update"], report["compute_ops_per_update"] = count.ops, count.compute_ops
    report["host_reads_per_update"] = count.host_reads
    write()
    obs = {k: v[0] for k, v in episode(rng, 1)[0].items() if k in OBS_KEYS}
    report["select_action_ms"] = round(timed(lambda: algo.select_action(obs), 200, sync), 3)
    # The loop iteration minus the env: act once, one update (sampling included), per env step.
    report["loop_iteration_ms_without_env"] = round(report["select_action_ms"] + report["sample_and_update_ms"], 3)
    big = ReplayBuffer(None)
    while len(big) < args.add_frames:
        big.add_episode(*episode(rng))
    ep = episode(rng)
    report["add_episode_ms_at_frames"] = {len(big): round(timed(lambda: big.add_episode(*ep), 20, sync), 3)}
    ring = ReplayBuffer(args.add_frames)
    while ring.episodes_added * (EPISODE + 1) < 2 * args.add_frames:  # full, wrapping
        ring.add_episode(*ep)
    report["add_episode_ms_full_ring"] = round(timed(lambda: ring.add_episode(*ep), 20, sync), 3)
    from apprentice.rl.eval_pool import _cpu_copy

    def snapshot() -> None:
        torch.save(_cpu_copy(algo.policy), io.BytesIO())

    report["eval_snapshot_ms"] = round(timed(snapshot, 10, sync), 3)
    write()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20):
            update(sample())
        sync()
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(args.profile)
        print(text.getvalue())
    signal.alarm(0)
    write()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
