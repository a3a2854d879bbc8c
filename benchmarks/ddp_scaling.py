"""Multi-GPU scaling of training: ACT and Diffusion under DDP on 1 → 2 → 4 → 8 GPUs, lerobot 0.6.1's multi-GPU
path (accelerate) on the same data, and full-size π0 under FSDP2.

Every run is launched as a user would launch it, one process per GPU:
  ours     python -m torch.distributed.run --nproc_per_node=N -m apprentice.train …   (torchrun; the rendezvous
           on 127.0.0.1, as --standalone does on localhost)
  lerobot  PY -m accelerate.commands.launch --num_processes N [--multi_gpu] -m lerobot.scripts.lerobot_train …
           (`accelerate launch`, with --lerobot-python PY)
  pi0      python -m torch.distributed.run --nproc_per_node=N benchmarks/pi0_fsdp.py (--pi0-fsdp; N >= 2 shards
           with apprentice.train.fsdp, N = 1 is the unsharded reference)
with NVLink multicast off in NCCL, PyTorch and NVSHMEM (NCCL_ENV below: on the shared multi-GPU hosts a program
that uses it can take the host's GPUs out of service).

The data and the per-GPU batches are train_throughput.py's (its dataset generator: 20 episodes × 150 frames,
640×480 AV1; batch 64 and 8), and every world size runs the same steps per process, so N GPUs see N× the
samples. Reported per run: samples/s (global: every process's samples; median of the log windows after the
first), scaling efficiency (samples/s ÷ (N × the 1-GPU samples/s)), the final loss and the loss at the 1-GPU
run's total samples (interpolated on the logged curve, so runs compare at equal samples seen), wall time, and
per rank (logs/rank_<r>.json, written by the trainer): where its frame cache lived, how many frames it held
(replicated: every rank decodes and holds all frames; sharded: only its share) and its peak GPU memory.

Each launch has a wall limit (--part-timeout) and the whole run a budget (--budget-s): a part that no longer
fits is reported as skipped, with the reason. --json-out is rewritten after every part.

  python benchmarks/ddp_scaling.py --quick --lerobot-python /work/lr061/bin/python   # CPU, gloo, 1 and 2
  python benchmarks/ddp_scaling.py --gpus 1,2,4,8 --lerobot-python /tmp/lrpy --pi0-fsdp --json-out $OUT/ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from apprentice.train.loop import read_metrics  # noqa: E402
from apprentice.train.rank_report import read_rank_reports  # noqa: E402
from train_throughput import QUICK_POLICY, lerobot_flags, make_dataset, parse_lerobot_log  # noqa: E402
from vla_build import progress, write_partial  # noqa: E402

# NVLink multicast off (the device notes: NCCL, PyTorch symmetric memory, NVSHMEM), for every launch.
NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


class Budget:
    """The run's wall budget: each part gets min(--part-timeout, what is left)."""

    def __init__(self, total_s: float, part_s: float) -> None:
        self.end, self.part_s = time.monotonic() + total_s, part_s

    def next_limit(self, floor_s: float = 20) -> float | None:
        left = self.end - time.monotonic()
        return min(self.part_s, left) if left >= floor_s else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cpu: bool) -> dict[str, str]:
    path = os.pathsep.join([str(HERE.parent / "src"), str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, **NCCL_ENV, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore"}
    if cpu:
        env["OMP_NUM_THREADS"] = "1"  # the processes share the cores
    return env


def bounded(cmd: list[str], env: dict[str, str], limit: float) -> tuple[int | None, str]:
    """Run cmd in its own process group; past `limit` seconds kill the whole group (torchrun's and accelerate's
    workers too). Returns (exit code or None on timeout, stdout+stderr)."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        log.seek(0)
        return rc, log.read()


def torchrun(n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={n}",
            "--master_addr=127.0.0.1", f"--master_port={_free_port()}"]


def loss_at(curve: list[list[float]], samples: float) -> float | None:
    """The logged loss at `samples` seen, linearly interpolated; None when the curve does not reach it."""
    xs, ys = [c[0] for c in curve], [c[1] for c in curve]
    if not xs or samples > xs[-1] or samples < xs[0]:
        return None
    return round(float(np.interp(samples, xs, ys)), 4)


def run_ours(args: argparse.Namespace, root: Path, out: Path, policy: str, batch: int, n: int, steps: int,
             limit: float) -> dict[str, Any]:
    flags = [f"--policy.type={policy}", f"--dataset.root={root}", f"--output_dir={out}", f"--batch_size={batch}",
             f"--steps={steps}", f"--log_freq={args.log_every}", "--save_checkpoint=false",
             f"--policy.device={args.device}", f"--num_workers={args.workers}", "--seed=0",
             *(QUICK_POLICY[policy] if args.quick else []), *args.extra_flags.split()]
    cmd = [*torchrun(n), "-m", "apprentice.train", *flags]
    t0 = time.perf_counter()
    rc, log = bounded(cmd, _env(args.device == "cpu"), limit)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"timed out after {limit:.0f} s" if rc is None else f"exit {rc}: {log[-800:]}")
    records = read_metrics(out)
    steady = [r["samples_per_s"] for r in records[1:]] or [records[-1]["samples_per_s"]]  # window 1 = warm-up
    ranks = read_rank_reports(out)
    result: dict[str, Any] = {
        "samples_per_s": round(float(np.median(steady)), 2), "final_loss": round(records[-1]["loss"], 4),
        "loss_curve": [[r["step"] * batch * n, round(r["loss"], 4)] for r in records],
        "wall_s": round(wall, 1), "steps": steps, "command": " ".join(["torchrun", *cmd[3:]]),
        "ranks": [{"rank": r["rank"], "max_gpu_mem_gb": r.get("max_gpu_mem_gb"), **r["data"]} for r in ranks],
    }
    if ranks:
        data = ranks[0]["data"]
        result["frame_cache"] = {"layout": data.get("layout", data["path"]), "storage": data.get("storage"),
                                 "device": data.get("device"), "per_rank_gb": data.get("frames_gb"),
                                 "frames_per_rank": data["frames_held"], "dataset_frames": data["dataset_frames"]}
    return result


def lerobot_probe(python: str) -> str | None:
    """None when `python` has lerobot and accelerate, else why the lerobot part cannot run."""
    code = ("import importlib.util as u; missing = [m for m in ('lerobot', 'accelerate') if not u.find_spec(m)]; "
            "print(','.join(missing))")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, env=_env(False))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"--lerobot-python {python}: cannot run it ({exc})"
    missing = proc.stdout.strip()
    if proc.returncode != 0 or missing:
        wheel = " (add the wheel accelerate==1.15.0, py3-none-any, to its bundle)" if missing == "accelerate" else ""
        return f"--lerobot-python {python} lacks {missing or 'a working interpreter'}{wheel}"
    return None


def run_lerobot(args: argparse.Namespace, root: Path, out: Path, policy: str, batch: int, n: int, steps: int,
                limit: float) -> dict[str, Any]:
    launch = [args.lerobot_python, "-m", "accelerate.commands.launch", f"--num_processes={n}", "--num_machines=1",
              "--mixed_precision=no", "--dynamo_backend=no", f"--main_process_port={_free_port()}"]
    if n > 1:
        launch.append("--multi_gpu")  # on a CPU too: lerobot then asks Accelerator(cpu=True), gloo
    flags = lerobot_flags(root, out, policy, batch, args.device, steps, args.log_every, args.workers)
    if args.quick:
        flags += QUICK_POLICY[policy]  # lerobot's field names: the same tiny policy on both sides
    cmd = [*launch, "-m", "lerobot.scripts.lerobot_train", *flags]
    t0 = time.perf_counter()
    rc, log = bounded(cmd, _env(args.device == "cpu"), limit)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"timed out after {limit:.0f} s" if rc is None else f"exit {rc}: {log[-800:]}")
    ran = re.search(r"Effective batch size: (\d+) x (\d+)", log)  # lerobot's own count of its processes
    if ran is None or (int(ran[1]), int(ran[2])) != (batch, n):
        raise RuntimeError(f"lerobot_train did not report {batch} x {n} processes: {log[-800:]}")
    result = parse_lerobot_log(log, batch * n)
    return {**result, "wall_s": round(wall, 1), "steps": steps, "processes": n,
            # lerobot has no frame cache: each rank's DataLoader workers seek and decode the mp4 per sample
            "data": f"per-sample video decode, {args.workers} DataLoader workers per rank",
            "command": " ".join(["accelerate", "launch", *launch[3:], *cmd[len(launch):]])}


def run_pi0(args: argparse.Namespace, n: int, limit: float) -> dict[str, Any]:
    cmd = [*torchrun(n), str(HERE / "pi0_fsdp.py"), f"--batch-size={args.pi0_batch}", f"--steps={args.pi0_steps}",
           "--warmup=1", *(["--quick"] if args.quick else [])]
    rc, log = bounded(cmd, _env(args.device == "cpu"), limit)
    lines = [ln for ln in log.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        raise RuntimeError(f"timed out after {limit:.0f} s" if rc is None else f"exit {rc}: {log[-800:]}")
    return {**json.loads(lines[-1]), "command": " ".join(["torchrun", *cmd[3:]])}


def summarize(row: dict[str, dict[str, Any]], batch: int, steps: int) -> None:
    """Scaling efficiency and loss at the 1-GPU run's samples, added to each world size's entry in place."""
    base = row.get("1", {})
    for n, entry in row.items():
        if "samples_per_s" not in entry:
            continue
        if "samples_per_s" in base:
            entry["scaling_efficiency"] = round(entry["samples_per_s"] / (int(n) * base["samples_per_s"]), 3)
        samples = steps * batch  # what one GPU saw in its whole run
        entry["loss_at_equal_samples"] = {"samples": samples, "loss": loss_at(entry.get("loss_curve", []), samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", default="1,2,4,8", help="world sizes; capped at torch.cuda.device_count()")
    parser.add_argument("--policies", default="act,diffusion")
    parser.add_argument("--batch-sizes", default="64,8", help="per-GPU batches (train_throughput.py's)")
    parser.add_argument("--steps-per-batch", default="64:80,8:400", help="steps per process, per batch")
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--length", type=int, default=150)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--vcodec", default="libsvtav1")
    parser.add_argument("--dataset-root", default=None, help="dataset location; generated there when missing")
    parser.add_argument("--extra-flags", default="", help="train flags added to every Apprentice run")
    parser.add_argument("--lerobot-python", default=None, help="interpreter with lerobot 0.6.1 and accelerate")
    parser.add_argument("--lerobot-policies", default=None, help="policies for lerobot (default: --policies)")
    parser.add_argument("--lerobot-batch-sizes", default=None, help="batches for lerobot (default: --batch-sizes)")
    parser.add_argument("--parts", default="ours,lerobot", help="ours (torchrun -m apprentice.train), lerobot")
    parser.add_argument("--ours-from", type=Path, default=None,
                        help="an earlier --parts ours JSON of this machine: its numbers fill `apprentice` (vs_lerobot)")
    parser.add_argument("--pi0-fsdp", action="store_true", help="also full-size π0 under FSDP2 (needs >= 2 GPUs)")
    parser.add_argument("--pi0-batch", type=int, default=32, help="π0 batch per GPU")
    parser.add_argument("--pi0-steps", type=int, default=4)
    parser.add_argument("--budget-s", type=float, default=540, help="wall budget of the whole run")
    parser.add_argument("--part-timeout", type=float, default=240, help="wall limit of one launch")
    parser.add_argument("--quick", action="store_true", help="CPU, gloo, world sizes 1,2, tiny data and policies")
    parser.add_argument("--json-out", type=Path, default=None, help="rewritten after every part")
    args = parser.parse_args()
    budget = Budget(args.budget_s, args.part_timeout)
    gpus = torch.cuda.device_count()
    args.device = "cuda" if gpus and not args.quick else "cpu"
    if args.quick:
        args.episodes, args.length, args.height, args.width, args.vcodec = 2, 40, 96, 128, "h264"
        args.batch_sizes, args.steps_per_batch, args.log_every, args.workers, args.gpus = "8", "8:8", 2, 0, "1,2"
        args.pi0_batch, args.pi0_steps = 2, 2
    asked = [int(n) for n in args.gpus.split(",")]
    cap = 2 if args.device == "cpu" else gpus  # CPU: gloo processes on this machine's cores
    worlds = [n for n in asked if n <= cap]
    steps_for = {int(k): int(v) for k, v in (kv.split(":") for kv in args.steps_per_batch.split(","))}

    work = Path(tempfile.mkdtemp(prefix="apprentice-ddp-"))
    root = Path(args.dataset_root) if args.dataset_root else work / "dataset"
    result: dict[str, Any] = {
        "device": args.device, "gpus": gpus, "gpu": torch.cuda.get_device_name(0) if gpus else None,
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "world_sizes": worlds,
        "not_run_world_sizes": {str(n): f"only {cap} {'GPU' if args.device == 'cuda' else 'process slot'}(s) here"
                                for n in asked if n > cap},
        "nccl_env": NCCL_ENV, "quick": args.quick, "steps_per_process": steps_for, "dataset": {"root": str(root)},
        "apprentice": {}, "lerobot": {}, "pi0_fsdp": {},
    }
    if not root.exists():
        result["dataset"]["write_s"] = round(make_dataset(root, args.episodes, args.length, args.height, args.width,
                                                          args.vcodec), 1)
    info = json.loads((root / "meta" / "info.json").read_text())
    result["dataset"].update(episodes=info["total_episodes"], frames=info["total_frames"])
    write_partial(args.json_out, result)

    def part(section: str, key: str, n: int, fn: Any, *fn_args: Any) -> None:
        row = result[section].setdefault(key, {})
        limit = budget.next_limit()
        if limit is None:
            row[str(n)] = {"skipped": f"wall budget --budget-s={args.budget_s:.0f} spent"}
        else:
            try:
                row[str(n)] = fn(*fn_args, limit)
            except Exception as exc:  # reported in the JSON; the other parts still run
                row[str(n)] = {"error": f"{type(exc).__name__}: {exc}"[:1200]}
        progress(f"{section} {key} x{n}: {json.dumps({k: v for k, v in row[str(n)].items() if k != 'loss_curve'})}")
        write_partial(args.json_out, result)

    parts = args.parts.split(",")
    for policy in args.policies.split(",") if "ours" in parts else []:
        for batch in map(int, args.batch_sizes.split(",")):
            for n in worlds:
                part("apprentice", f"{policy}_b{batch}", n, run_ours, args, root, work / f"ours-{policy}-{batch}-{n}",
                     policy, batch, n, steps_for[batch])
            summarize(result["apprentice"][f"{policy}_b{batch}"], batch, steps_for[batch])

    if "ours" not in parts and args.ours_from:
        result["apprentice"] = json.loads(args.ours_from.read_text())["apprentice"]
        result["apprentice_from"] = str(args.ours_from)
    skip = "not in --parts" if "lerobot" not in parts else "no --lerobot-python" if not args.lerobot_python \
        else lerobot_probe(args.lerobot_python)
    if skip:
        result["lerobot"] = {"skipped": skip}
    else:
        for policy in (args.lerobot_policies or args.policies).split(","):
            for batch in map(int, (args.lerobot_batch_sizes or args.batch_sizes).split(",")):
                for n in worlds:
                    part("lerobot", f"{policy}_b{batch}", n, run_lerobot, args, root,
                         work / f"lerobot-{policy}-{batch}-{n}", policy, batch, n, steps_for[batch])
                summarize(result["lerobot"][f"{policy}_b{batch}"], batch, steps_for[batch])
                ours = result["apprentice"].get(f"{policy}_b{batch}", {})
                for n, entry in result["lerobot"][f"{policy}_b{batch}"].items():
                    if "samples_per_s" in entry and "samples_per_s" in ours.get(n, {}):
                        ours[n]["vs_lerobot"] = round(ours[n]["samples_per_s"] / entry["samples_per_s"], 2)

    if not args.pi0_fsdp:
        result["pi0_fsdp"] = {"skipped": "not asked (--pi0-fsdp)"}
    elif max(worlds, default=0) < 2:
        result["pi0_fsdp"] = {"skipped": f"FSDP shards across >= 2 GPUs; this machine has {gpus}"}
    else:
        for n in worlds if args.device == "cpu" else [n for n in worlds if n <= 2]:
            part("pi0_fsdp", f"pi0_b{args.pi0_batch}", n, run_pi0, args, n)
    write_partial(args.json_out, result)
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)  # the runs' output dirs (and the dataset unless --dataset-root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
