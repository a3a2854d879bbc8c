"""Scripted experts' success rate and speed per task over seeded episodes. Prints one JSON object.

    python benchmarks/sim_expert_success.py --episodes 50
"""

from __future__ import annotations

import argparse
import json
import time

from apprentice.sim import TASKS, make_env, make_expert
from apprentice.sim.record import run_expert_episode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    results = {}
    for task in args.tasks.split(","):
        env = make_env(task, render=False)
        expert = make_expert(env)
        started = time.perf_counter()
        runs = [run_expert_episode(env, expert, seed, frames_after_success=0) for seed in range(args.episodes)]
        elapsed = time.perf_counter() - started
        frames = sum(n for _, n in runs)
        results[task] = {
            "episodes": args.episodes,
            "success_rate": sum(ok for ok, _ in runs) / args.episodes,
            "failed_seeds": [seed for seed, (ok, _) in enumerate(runs) if not ok],
            "mean_episode_frames": frames / args.episodes,
            "steps_per_s_without_render": frames / elapsed,
        }
        env.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
