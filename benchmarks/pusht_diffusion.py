"""Diffusion Policy on scripted gym-pusht data: record -> train (our trainer) -> seeded eval. Prints one JSON object.

    python benchmarks/pusht_diffusion.py --work /tmp/pusht --device cuda                       # everything
    python benchmarks/pusht_diffusion.py --work /tmp/pusht --device cuda --phase record        # or one phase
    python benchmarks/pusht_diffusion.py --work /tmp/pusht --device cuda --phase train --steps 20000
    python benchmarks/pusht_diffusion.py --work /tmp/pusht --device cuda --phase eval --eval_episodes 100
    python benchmarks/pusht_diffusion.py --quick                                                # CPU smoke run

Recording: `--episodes` expert episodes of PushT-v0 (seeds 0, 1, ...; lerobot/pusht has 206) into WORK/data,
the lerobot/pusht layout (observation.image 96x96, observation.state, action at 10 fps). Training: lerobot's
Diffusion defaults as its pusht recipe uses them (n_obs_steps 2, horizon 16, n_action_steps 8, 84x84 random
crop, ResNet18 + group norm + spatial softmax, DDPM 100 steps, AdamW 1e-4 cosine, batch 64, 200k steps),
run as `python -m apprentice.train` in its own process; its wall time is the GPU seconds reported. Eval:
`--eval_episodes` seeded episodes (seed 100000 + i) of 300 steps, success = gym-pusht's coverage > 95%,
avg_max_reward = the average over episodes of the best coverage/0.95 reached (lerobot's "avg max overlap").
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# lerobot's Diffusion Policy defaults for PushT that our config does not default to the same value
PUSHT_RECIPE = ["--policy.crop_shape=[84,84]"]
# --quick: the same architecture, shrunk so two CPU steps take seconds
QUICK_POLICY = ["--policy.down_dims=[32,64]", "--policy.horizon=8", "--policy.n_action_steps=4",
                "--policy.diffusion_step_embed_dim=16", "--policy.spatial_softmax_num_keypoints=8",
                "--policy.num_train_timesteps=4", "--policy.kernel_size=3", "--policy.drop_n_last_frames=3"]


def wilson(successes: int, n: int, z: float = 1.96) -> list[float]:
    """The Wilson score 95% interval of a success rate."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def record_phase(work: Path, episodes: int) -> dict:
    from apprentice.sim.record import record

    result = record("pusht", work / "data", episodes, vcodec="h264", log=lambda _: None)
    return {"episodes": result.episodes_saved, "frames": result.frames, "expert_success_rate":
            result.expert_success_rate, "record_s": round(result.seconds, 1)}


def train_phase(work: Path, args: argparse.Namespace) -> dict:
    flags = ["--policy.type=diffusion", *PUSHT_RECIPE, *(QUICK_POLICY if args.quick else []),
             f"--dataset.root={work / 'data'}", f"--output_dir={work / 'train'}", f"--steps={args.steps}",
             f"--batch_size={args.batch_size}", f"--save_freq={args.steps}", f"--log_freq={max(1, args.steps // 50)}",
             f"--policy.device={args.device}", f"--num_workers={args.num_workers}", "--seed=1000"]
    started = time.perf_counter()
    with open(work / "train.log", "w") as log:
        rc = subprocess.run([sys.executable, "-m", "apprentice.train", *flags], stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if rc.returncode != 0:
        raise SystemExit(f"training failed (exit {rc.returncode}); see {work / 'train.log'}")
    return {"steps": args.steps, "batch_size": args.batch_size, "train_s": round(seconds, 1),
            "gpu_s": round(seconds, 1) if args.device.startswith("cuda") else 0.0}


def eval_phase(work: Path, args: argparse.Namespace) -> dict:
    from apprentice.policies import load_policy
    from apprentice.sim.eval import evaluate

    policy = load_policy(work / "train" / "checkpoints" / "last" / "pretrained_model", device=args.device)
    policy.eval()
    env_kwargs = {"max_episode_steps": 20} if args.quick else {}
    started = time.perf_counter()
    info = evaluate(policy, "pusht", n_episodes=args.eval_episodes, batch_size=args.eval_batch_size,
                    output_dir=work / "eval", max_episodes_rendered=2, env_kwargs=env_kwargs)
    agg = info["aggregated"]
    successes = sum(e["success"] for e in info["per_episode"])
    return {"eval_episodes": agg["n_episodes"], "eval_seed": agg["seed"], "success_rate": agg["success_rate"],
            "pc_success": agg["pc_success"], "success_wilson95": wilson(successes, agg["n_episodes"]),
            "avg_max_reward": agg["avg_max_reward"], "avg_sum_reward": agg["avg_sum_reward"],
            "eval_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=None, help="working directory (data/, train/, eval/)")
    parser.add_argument("--phase", choices=["all", "record", "train", "eval"], default="all")
    parser.add_argument("--episodes", type=int, default=206)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_workers", type=int, default=4)
    parser.add_argument("--eval_episodes", type=int, default=100)
    parser.add_argument("--eval_batch_size", type=int, default=50)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: 2 episodes, 2 steps, 2 short evals")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.steps, args.batch_size, args.num_workers = 2, 2, 2, 0
        args.eval_episodes, args.eval_batch_size, args.device = 2, 2, "cpu"
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pusht_diffusion_"))
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"benchmark": "pusht_diffusion", "work": str(work), "device": args.device, "quick": args.quick}
    if args.phase in ("all", "record"):
        out["record"] = record_phase(work, args.episodes)
    if args.phase in ("all", "train"):
        out["train"] = train_phase(work, args)
    if args.phase in ("all", "eval"):
        out["eval"] = eval_phase(work, args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
