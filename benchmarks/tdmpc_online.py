"""TD-MPC offline then online on a sim env: success rate after the offline phase and after online training.

1. Offline data: `--offline-episodes` episodes of the env's scripted expert (when it has one), written with
   DatasetWriter including next.reward / next.done (0 = online only, stats from the env's action bounds).
2. `apprentice train --policy.type=tdmpc --steps=<offline> --online_steps=<online> --env.type=<env>`: one
   run, checkpointed at the end of the offline phase and at the end.
3. Both checkpoints evaluated with `apprentice.sim.eval.evaluate` on the same held-out seeds.

Prints one JSON object: success rates, average sum rewards, steps, train/eval seconds, online rollout log.

    python benchmarks/tdmpc_online.py --quick                      # CPU, reach, tiny config (~minutes)
    python benchmarks/tdmpc_online.py --env reach --device cuda    # LeRobot's defaults, longer runs
    python benchmarks/tdmpc_online.py --env xarm --image --device cuda --offline-episodes 0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from apprentice.policies import load_policy
from apprentice.rl import collect_episode
from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.cli import resolve_task
from apprentice.sim.eval import evaluate
from apprentice.train import TrainConfig, train
from apprentice.train.online import read_online_log

TINY = {
    "horizon": 3,
    "latent_dim": 32,
    "mlp_dim": 64,
    "state_encoder_hidden_dim": 64,
    "n_gaussian_samples": 64,
    "n_pi_samples": 8,
    "n_elites": 16,
    "cem_iterations": 3,
}


class _Expert:
    """The env's scripted expert behind the policy interface collect_episode uses."""

    def __init__(self, env) -> None:
        self.expert, self.fresh = make_expert(env), True

    def reset(self) -> None:
        self.fresh = True

    def select_action(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        obs = {
            k: (v[0].permute(1, 2, 0) * 255).byte().numpy() if v.dim() == 4 else v[0].numpy() for k, v in batch.items()
        }
        if self.fresh:
            self.expert.reset(obs)
            self.fresh = False
        return torch.from_numpy(np.asarray(self.expert.act(obs), dtype=np.float32)).unsqueeze(0)


def record_expert(task: str, root: Path, episodes: int, render: bool, max_steps: int | None) -> int:
    """Expert episodes with rewards as a LeRobot dataset; returns the frame count."""
    from apprentice.dataset import DatasetWriter

    kwargs = {"max_episode_steps": max_steps} if max_steps else {}
    env = make_env(task, seed=0, render=render, **kwargs)
    features = {
        **env.features,
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
    }
    frames = 0
    with DatasetWriter.create(root, features=features, fps=env.fps, robot_type=env.robot_type, vcodec="h264") as w:
        for i in range(episodes):
            ep = collect_episode(env, _Expert(env), seed=i)
            for t in range(ep.length):  # the final observation is not a dataset frame (LeRobot's layout)
                frame = {k: ep.frames[k][t] for k in env.features}
                for key in list(frame):
                    if key.startswith("observation.images."):
                        frame[key] = frame[key].transpose(1, 2, 0)  # stored (C, H, W) -> the writer's (H, W, C)
                frame["next.reward"] = ep.frames["next.reward"][t : t + 1]
                frame["next.done"] = ep.frames["next.done"][t : t + 1]
                w.add_frame(frame)
            w.save_episode(task=env.task)
            frames += ep.length
    env.close()
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="reach", help="--env.type (reach, xarm, ...)")
    parser.add_argument("--task", default=None, help="--env.task (e.g. XarmLift-v0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="CPU, tiny config, short runs")
    parser.add_argument("--image", action="store_true", help="train on the camera too (one square image)")
    parser.add_argument("--offline-episodes", type=int, default=50)
    parser.add_argument("--offline-steps", type=int, default=20000)
    parser.add_argument("--online-steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args()
    if args.quick:
        args.device = "cpu"
        args.offline_episodes, args.offline_steps, args.online_steps = 4, 300, 200
        args.batch_size, args.eval_episodes, args.max_episode_steps = 32, 5, args.max_episode_steps or 60
        torch.set_num_threads(1)

    task = resolve_task(args.env, args.task)
    work = Path(args.output_dir or tempfile.mkdtemp(prefix="apprentice-tdmpc-"))
    result: dict = {
        "benchmark": "tdmpc_online",
        "env": args.env,
        "task": task,
        "device": args.device,
        "quick": args.quick,
        "offline_steps": args.offline_steps,
        "online_steps": args.online_steps,
    }
    flags = [
        "--policy.type=tdmpc",
        f"--policy.device={args.device}",
        f"--env.type={args.env}",
        f"--output_dir={work / 'run'}",
        f"--batch_size={args.batch_size}",
        f"--seed={args.seed}",
        f"--online_steps={args.online_steps}",
        "--log_freq=50",
        "--online.env_seed=5000",
    ]
    if args.task:
        flags.append(f"--env.task={args.task}")
    if args.max_episode_steps:
        flags.append(f"--env.max_episode_steps={args.max_episode_steps}")
    if args.quick:
        flags += [f"--policy.{k}={v}" for k, v in TINY.items()] + ["--policy.lr=1e-3"]
    offline_steps = args.offline_steps
    if args.offline_episodes > 0:
        try:
            t0 = time.perf_counter()
            result["offline_frames"] = record_expert(
                task, work / "data", args.offline_episodes, args.image, args.max_episode_steps
            )
            result["record_s"] = round(time.perf_counter() - t0, 1)
            flags.append(f"--dataset.root={work / 'data'}")
        except SimError as exc:  # no scripted expert for this env: online only
            result["offline_skipped"] = str(exc)
            offline_steps = 0
    else:
        offline_steps = 0
    flags += [f"--steps={offline_steps}", f"--save_freq={max(1, offline_steps) if offline_steps else 10**9}"]
    t0 = time.perf_counter()
    last = train(TrainConfig.from_args(flags))
    result["train_s"] = round(time.perf_counter() - t0, 1)
    result["steps"] = offline_steps + args.online_steps
    rollouts = read_online_log(work / "run")
    result["online_episodes"] = len(rollouts)
    result["online_rollout_success_rate"] = float(np.mean([r["success"] for r in rollouts])) if rollouts else None

    eval_kwargs = {"max_episode_steps": args.max_episode_steps} if args.max_episode_steps else {}
    checkpoints = {"online": last}
    if offline_steps:
        checkpoints = {
            "offline": work / "run" / "checkpoints" / f"{offline_steps:06d}" / "pretrained_model",
            **checkpoints,
        }
    for phase, path in checkpoints.items():
        policy = load_policy(path, device=args.device)
        t0 = time.perf_counter()
        torch.manual_seed(0)
        info = evaluate(policy, task, n_episodes=args.eval_episodes, batch_size=5, env_kwargs=eval_kwargs)
        agg = info.get("overall") or info["aggregated"]  # eval_info's LeRobot layout, or the older one
        result[f"success_rate_{phase}"] = agg["success_rate"]
        result[f"avg_sum_reward_{phase}"] = round(agg["avg_sum_reward"], 3)
        result[f"eval_s_{phase}"] = round(time.perf_counter() - t0, 1)
    result["output_dir"] = str(work)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
