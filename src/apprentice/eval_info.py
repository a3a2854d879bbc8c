"""eval_info.json: LeRobot's layout (`per_task`, `per_group`, `overall`) plus a Wilson interval on success.

One writer for both evaluations: `apprentice eval` in simulation and the policy node's evaluation mode
(sim or hardware, `deploy.evaluation.EvalBook`). Plain Python, so a robot without the sim extras writes it too.

The keys and their order are those of lerobot-eval's `eval_policy_all` (lerobot 0.4 – 0.6), so a reader
of LeRobot's eval output reads ours. Our additions sit beside them and rename nothing: `success_rate`
(0..1), `pc_success_ci95` ([low, high] in percent), `seed` (overall), and per task the env `task`
name, the episodes' `seeds` and `lengths`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Two-sided 95 % normal quantile, Φ⁻¹(0.975).
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (0..1) for `successes` out of `n` trials; (0, 1) when n is 0.

    Unlike p ± z·√(p(1-p)/n) it stays inside [0, 1] and is not zero-width at 0 % or 100 % — the cases a
    policy evaluation hits most (20/20 successes is 83.9 – 100 %, not "100 % ± 0").
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # The endpoints are exactly 0 / 1 at p = 0 / 1; clamp the rounding of centre ± half there.
    return max(0.0, centre - half), min(1.0, centre + half)


def task_metrics(
    task: str,
    seeds: Sequence[int],
    successes: Sequence[bool],
    sum_rewards: Sequence[float],
    max_rewards: Sequence[float],
    lengths: Sequence[int],
    video_paths: Sequence[str],
) -> dict[str, Any]:
    """One task's per-episode lists, as LeRobot's `per_task[i]["metrics"]` (+ task, seeds, lengths)."""
    return {
        "sum_rewards": [float(r) for r in sum_rewards],
        "max_rewards": [float(r) for r in max_rewards],
        "successes": [bool(s) for s in successes],
        "video_paths": list(video_paths),
        "predicted_video_paths": [],  # world-model policies' imagined videos in LeRobot; none here
        "task": task,
        "seeds": [int(s) for s in seeds],
        "lengths": [int(n) for n in lengths],
    }


def _aggregate(metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    sums = [r for m in metrics for r in m["sum_rewards"]]
    maxes = [r for m in metrics for r in m["max_rewards"]]
    successes = [s for m in metrics for s in m["successes"]]
    n = len(successes)
    low, high = wilson_interval(sum(successes), n)
    return {
        "avg_sum_reward": _mean(sums),
        "avg_max_reward": _mean(maxes),
        "pc_success": _mean(successes) * 100,
        "n_episodes": n,
        "video_paths": [p for m in metrics for p in m["video_paths"]],
        "predicted_video_paths": [p for m in metrics for p in m["predicted_video_paths"]],
        "success_rate": _mean(successes),
        "pc_success_ci95": [100 * low, 100 * high],
    }


def _mean(values: Sequence[float]) -> float:
    return float("nan") if not values else float(sum(float(v) for v in values) / len(values))


def build_eval_info(per_task: Sequence[dict[str, Any]], eval_s: float, seed: int | None) -> dict[str, Any]:
    """The eval_info dict from `per_task` entries ({"task_group", "task_id", "metrics"}) in run order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in per_task:
        groups.setdefault(entry["task_group"], []).append(entry["metrics"])
    agg = _aggregate([entry["metrics"] for entry in per_task])
    overall = {  # LeRobot's keys in LeRobot's order, then ours
        "avg_sum_reward": agg["avg_sum_reward"],
        "avg_max_reward": agg["avg_max_reward"],
        "pc_success": agg["pc_success"],
        "n_episodes": agg["n_episodes"],
        "eval_s": eval_s,
        "eval_ep_s": eval_s / max(1, agg["n_episodes"]),
        "video_paths": agg["video_paths"],
        "predicted_video_paths": agg["predicted_video_paths"],
        "success_rate": agg["success_rate"],
        "pc_success_ci95": agg["pc_success_ci95"],
        "seed": seed,
    }
    return {
        "per_task": list(per_task),
        "per_group": {group: _aggregate(metrics) for group, metrics in groups.items()},
        "overall": overall,
    }


def write_eval_info(output_dir: str | Path, info: dict) -> Path:
    """Write `output_dir`/eval_info.json atomically (a reader never sees half a file)."""
    path = Path(output_dir) / "eval_info.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, path)
    return path
