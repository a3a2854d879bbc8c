"""ACT on gym-aloha, end to end through the CLI: scripted demos -> `apprentice train` -> `apprentice eval`.

Records `--episodes` scripted episodes on the real gym-aloha env (or uses `--dataset`), trains ACT with
lerobot's ACT recipe for ALOHA (chunk_size 100, n_action_steps 100, batch 8, lr 1e-5 for the model and the
backbone; `--steps` sets the length), then evaluates `--eval-episodes` seeded episodes never seen in
training (seeds 100000+) and prints one JSON object: success rate with its Wilson 95 % interval, average
max reward, and the seconds each stage took on the device (train + eval = the GPU seconds).

    python benchmarks/aloha_act.py --device cuda --task AlohaTransferCube-v0 --episodes 50 --steps 100000
    python benchmarks/aloha_act.py --device cuda --task AlohaInsertion-v0 --dataset /data/ins --steps 100000
    python benchmarks/aloha_act.py --quick          # a minute on a CPU: tiny images, model and episodes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95 % for z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run(args: list[str], log: Path) -> float:
    """Run `python -m apprentice.cli ARGS`, its output into `log`; the seconds it took. Fails loudly."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "apprentice.cli", *args], stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(
            f"aloha_act: `apprentice {args[0]}` failed (exit {proc.returncode}); see {log}:\n" + log.read_text()[-2000:]
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="AlohaTransferCube-v0", choices=["AlohaTransferCube-v0", "AlohaInsertion-v0"])
    parser.add_argument("--episodes", type=int, default=50, help="scripted episodes to record")
    parser.add_argument("--dataset", default=None, help="train on this dataset instead of recording one")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--eval-batch-size", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", default=None, help="where the dataset, checkpoints and logs go (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=1000, help="training seed")
    parser.add_argument(
        "--backbone-weights",
        default=None,
        help="a local ResNet-18 safetensors file (lerobot's ACT starts from ImageNet weights; default: random init)",
    )
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: 2 short episodes, tiny ACT, 2 evals")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")

    work = Path(args.work or tempfile.mkdtemp(prefix="aloha_act_"))
    work.mkdir(parents=True, exist_ok=True)
    env = ["--env.type=aloha", f"--env.task={args.task}"]
    record_args = [f"--num-episodes={args.episodes}", "--vcodec=h264"]
    policy = [
        "--policy.chunk_size=100",
        "--policy.n_action_steps=100",
        f"--policy.optimizer_lr={args.lr}",
        f"--policy.optimizer_lr_backbone={args.lr}",
    ]
    steps, batch, evals, eval_batch, device = (
        args.steps,
        args.batch_size,
        args.eval_episodes,
        args.eval_batch_size,
        args.device,
    )
    if args.quick:
        # The same pipeline at toy size: 48x64 images, 30-step episodes (the expert has not succeeded by
        # then, so failed episodes are kept), a 2-layer 32-wide ACT, 3 training steps, 2 eval episodes.
        env += ["--env.image_height=48", "--env.image_width=64", "--env.episode_length=30"]
        record_args = ["--num-episodes=2", "--keep-failed"]
        policy = [
            "--policy.chunk_size=10",
            "--policy.n_action_steps=10",
            "--policy.dim_model=32",
            "--policy.n_heads=2",
            "--policy.dim_feedforward=64",
            "--policy.n_encoder_layers=1",
            "--policy.n_vae_encoder_layers=1",
            "--policy.latent_dim=8",
        ]
        steps, batch, evals, eval_batch, device = 3, 2, 2, 2, "cpu"

    result: dict = {"task": args.task, "device": device, "quick": args.quick, "work": str(work)}
    dataset = Path(args.dataset) if args.dataset else work / "data"
    if args.dataset is None:
        if dataset.exists():
            sys.exit(f"aloha_act: {dataset} exists; pass --dataset={dataset} to reuse it or a new --work")
        result["record_s"] = run(["sim", "record", *env, *record_args, "--out", str(dataset)], work / "record.log")
        result["recorded_episodes"] = 2 if args.quick else args.episodes
    result["dataset"] = str(dataset)

    out = work / "train"
    train_args = [
        "train",
        "--policy.type=act",
        f"--dataset.root={dataset}",
        f"--output_dir={out}",
        f"--policy.device={device}",
        f"--batch_size={batch}",
        f"--steps={steps}",
        f"--save_freq={steps}",
        f"--seed={args.seed}",
        *policy,
    ]
    if args.backbone_weights:
        train_args.append(f"--policy.pretrained_backbone_weights={args.backbone_weights}")
    result["train_s"] = run(train_args, work / "train.log")
    result.update(train_steps=steps, batch_size=batch, lr=args.lr)

    eval_dir = work / "eval"
    eval_args = [
        "eval",
        f"--policy.path={out / 'checkpoints' / 'last' / 'pretrained_model'}",
        f"--policy.device={device}",
        *env,
        f"--eval.n_episodes={evals}",
        f"--eval.batch_size={eval_batch}",
        "--eval.max_episodes_rendered=2",
        f"--output_dir={eval_dir}",
    ]
    result["eval_s"] = run(eval_args, work / "eval.log")
    info = json.loads((eval_dir / "eval_info.json").read_text())
    aggregated = info.get("aggregated", {})
    successes = sum(bool(e.get("success")) for e in info.get("per_episode", []))
    n = len(info.get("per_episode", [])) or evals
    result.update(
        eval_episodes=n,
        success_rate=successes / n,
        wilson95=[round(v, 4) for v in wilson(successes, n)],
        avg_max_reward=aggregated.get("avg_max_reward"),
        eval_aggregated=aggregated,
        gpu_s=result["train_s"] + result["eval_s"] if device.startswith("cuda") else 0.0,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
