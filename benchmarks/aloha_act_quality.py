"""ACT on gym-aloha transfer-cube in one GPU-machine call: record -> train -> evaluate, one JSON object.

Issue #11's quality target (>= 95 % over >= 100 seeded episodes from 50 scripted demonstrations) and
issue #12's time to quality, inside one time budget (a device call is at most 10 minutes and nothing but
a few small files comes back, so the checkpoint never leaves the machine):

1. `apprentice sim record`: `--episodes` scripted episodes, `--record-workers` recorders at once on
   disjoint seed ranges (worker w starts at seed 1000*w), then `apprentice dataset merge` in worker order.
2. `apprentice train --policy.type=act` on the GPU frame cache, `--cuda_graphs=true`; a checkpoint every
   `--save-every` steps, and training is stopped (SIGTERM) when the budget left is only what evaluation
   needs, so the newest checkpoint is evaluated either way (the JSON says which step).
3. `apprentice eval` on `--eval-episodes` seeded episodes (seeds 100000+, never recorded) with
   `--eval-batch-size` gymnasium AsyncVectorEnv workers; eval_info.json is copied to `--out`.

    python benchmarks/aloha_act_quality.py --device cuda --out "$OUT"       # (benchmarks/device/ wraps it)
    python benchmarks/aloha_act_quality.py --quick                         # CPU smoke run, tiny everything
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "apprentice.cli", *args]


def run(cmd: list[str], log: Path, what: str, timeout: float | None = None) -> float:
    """Run `cmd` with its output in `log`; the seconds it took. A failure exits with the log's tail."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        fail(f"{what} failed (exit {proc.returncode}); {log}:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - started


def fail(message: str) -> None:
    print(json.dumps({"error": message[-4000:]}))
    sys.exit(1)


def record(args: argparse.Namespace, env: list[str], work: Path) -> tuple[Path, float, int]:
    """Record args.episodes episodes with args.record_workers recorders in parallel, merged into one dataset."""
    workers = max(1, min(args.record_workers, args.episodes))
    shares = [args.episodes // workers + (w < args.episodes % workers) for w in range(workers)]
    extra = ["--keep-failed"] if args.quick else []
    started = time.perf_counter()
    procs = []
    for w, n in enumerate(shares):
        root = work / f"data_{w}"
        log = (work / f"record_{w}.log").open("w")
        cmd = cli("sim", "record", *env, f"--num-episodes={n}", f"--seed={1000 * w}", "--vcodec=h264",
                  f"--out={root}", *extra)
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), root, log))
    for proc, root, log in procs:
        proc.wait()
        log.close()
        if proc.returncode != 0:
            fail(f"sim record into {root} failed (exit {proc.returncode}):\n{Path(log.name).read_text()[-3000:]}")
    roots = [root for _, root, _ in procs]
    if len(roots) == 1:
        return roots[0], time.perf_counter() - started, workers
    merged = work / "data"
    run(cli("dataset", "merge", *map(str, roots), f"--out={merged}"), work / "merge.log", "dataset merge")
    return merged, time.perf_counter() - started, workers


def train(args: argparse.Namespace, dataset: Path, work: Path, deadline: float) -> tuple[float, int, bool]:
    """Train until args.steps or the deadline (then SIGTERM; checkpoints are renamed into place, so the newest
    one is whole). Returns (seconds, steps of the newest checkpoint, stopped_early)."""
    out = work / "train"
    cmd = cli(
        "train", "--policy.type=act", f"--dataset.root={dataset}", f"--output_dir={out}",
        f"--policy.device={args.device}", f"--batch_size={args.batch_size}", f"--steps={args.steps}",
        f"--save_freq={args.save_every}", f"--log_freq={args.log_every}", f"--seed={args.seed}",
        f"--num_workers={args.num_workers}", f"--policy.optimizer_lr={args.lr}",
        f"--policy.optimizer_lr_backbone={args.lr_backbone}",
        f"--cuda_graphs={'true' if args.cuda_graphs else 'false'}", *args.train_args,
    )
    log = work / "train.log"
    started = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        stopped = False
        while proc.poll() is None:
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGTERM)
                stopped = True
                proc.wait(timeout=60)
                break
            time.sleep(1.0)
    seconds = time.perf_counter() - started
    if not stopped and proc.returncode != 0:
        fail(f"train failed (exit {proc.returncode}); {log}:\n{log.read_text()[-3000:]}")
    last = out / "checkpoints" / "last"
    if not last.exists():
        fail(f"training stopped at the deadline before its first checkpoint (--save-every {args.save_every}); "
             f"{log}:\n{log.read_text()[-2000:]}")
    return seconds, int(last.resolve().name), stopped


def train_metrics(work: Path) -> dict:
    """The last logged loss, the median samples/s of the log windows, and the warm-up the loop reported."""
    result: dict = {}
    jsonl = work / "train" / "logs" / "train.jsonl"
    if jsonl.exists():
        rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        if rows:
            rates = sorted(r["samples_per_s"] for r in rows[1:] or rows)
            result.update(final_loss=rows[-1]["loss"], last_logged_step=rows[-1]["step"],
                          samples_per_s=rates[len(rates) // 2])
    compile_json = work / "train" / "logs" / "compile.json"
    if compile_json.exists():
        result["compile"] = json.loads(compile_json.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="AlohaTransferCube-v0", choices=["AlohaTransferCube-v0", "AlohaInsertion-v0"])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--record-workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="training steps, fewer if the budget ends first (4000)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--lr-backbone", type=float, default=1e-5)
    parser.add_argument("--save-every", type=int, default=None, help="checkpoint every N steps (1000)")
    parser.add_argument("--log-every", type=int, default=200)
    parser.add_argument("--num-workers", type=int, default=max(1, min(12, (os.cpu_count() or 2) - 2)),
                        help="episodes decoded at once into the frame cache")
    parser.add_argument("--cuda-graphs", type=lambda s: s.lower() in ("1", "true", "yes"), default=None,
                        help="default: true on CUDA")
    parser.add_argument("--train-arg", dest="train_args", action="append", default=[],
                        help="one more `apprentice train` flag, e.g. --train-arg=--ema.enable=true (repeatable)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--eval-batch-size", type=int, default=20, help="AsyncVectorEnv workers")
    parser.add_argument("--budget-s", type=float, default=540.0, help="wall seconds for the whole run")
    parser.add_argument("--eval-reserve-s", type=float, default=250.0,
                        help="seconds kept for evaluation: training stops this long before the budget ends")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=1000, help="training seed")
    parser.add_argument("--work", default=None, help="dataset, checkpoints and logs (default: a temp dir)")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="where eval_info.json and result.json go")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: 2 short episodes, tiny ACT, 2 evals")
    args = parser.parse_args()
    t0 = time.monotonic()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    env = ["--env.type=aloha", f"--env.task={args.task}"]
    if args.quick:
        # The same pipeline at toy size: 48x64 frames, 30-step episodes (the expert has not succeeded by then,
        # so failed episodes are kept), a 1-layer 32-wide ACT, 3 steps, 2 eval episodes in 2 worker processes.
        env += ["--env.image_height=48", "--env.image_width=64", "--env.episode_length=30"]
        args.episodes, args.record_workers, args.device = 2, 2, "cpu"
        args.batch_size, args.log_every, args.num_workers = 2, 1, 1
        args.steps, args.save_every = args.steps or 3, args.save_every or 3
        args.eval_episodes, args.eval_batch_size = 2, 2
        args.train_args += [
            "--policy.chunk_size=10", "--policy.n_action_steps=10", "--policy.dim_model=32", "--policy.n_heads=2",
            "--policy.dim_feedforward=64", "--policy.n_encoder_layers=1", "--policy.n_vae_encoder_layers=1",
            "--policy.latent_dim=8",
        ]
    args.steps, args.save_every = args.steps or 4000, args.save_every or 1000
    if args.cuda_graphs is None:
        args.cuda_graphs = args.device.startswith("cuda")
    work = Path(args.work or tempfile.mkdtemp(prefix="aloha_act_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"task": args.task, "device": args.device, "quick": args.quick, "budget_s": args.budget_s}

    dataset, result["record_s"], result["record_workers"] = record(args, env, work)
    result["recorded_episodes"] = args.episodes

    deadline = t0 + args.budget_s - args.eval_reserve_s
    train_s, step, stopped = train(args, dataset, work, deadline)
    result.update(train_s=train_s, steps=step, steps_asked=args.steps, stopped_at_budget=stopped,
                  batch_size=args.batch_size, lr=args.lr, lr_backbone=args.lr_backbone,
                  cuda_graphs=args.cuda_graphs, **train_metrics(work))

    save(args.out, result, "train")  # if the call's time limit cuts the evaluation, this much still comes back

    eval_dir = work / "eval"
    eval_cmd = cli(
        "eval", f"--policy.path={work / 'train' / 'checkpoints' / 'last' / 'pretrained_model'}",
        f"--policy.device={args.device}", *env, f"--eval.n_episodes={args.eval_episodes}",
        f"--eval.batch_size={args.eval_batch_size}", "--eval.use_async_envs=true",
        "--eval.max_episodes_rendered=0", f"--output_dir={eval_dir}",
    )
    result["eval_s"] = run(eval_cmd, work / "eval.log", "eval")
    overall = json.loads((eval_dir / "eval_info.json").read_text())["overall"]
    result.update(
        eval_episodes=overall["n_episodes"], success_rate=overall["success_rate"],
        pc_success_ci95=overall["pc_success_ci95"], avg_max_reward=overall["avg_max_reward"],
        avg_sum_reward=overall["avg_sum_reward"], eval_seed=overall["seed"],
        # The GPU holds the policy from the train process's start to the eval's end (recording renders with
        # EGL on it too, but that is the benchmark's data, not the learner's cost).
        gpu_s=train_s + result["eval_s"] if args.device.startswith("cuda") else 0.0,
        total_s=time.monotonic() - t0, work=str(work),
    )
    if args.out:
        shutil.copy(eval_dir / "eval_info.json", Path(args.out) / "eval_info.json")
    save(args.out, result, "eval")
    print(json.dumps(result))


def save(out: str | None, result: dict, stage: str) -> None:
    """result.json in `out` (the device's $OUT), marked with the last stage finished."""
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "result.json").write_text(json.dumps({**result, "stage_done": stage}, indent=2))


if __name__ == "__main__":
    main()
