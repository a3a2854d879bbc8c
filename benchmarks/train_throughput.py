"""Training throughput (samples/s) of `apprentice train` for ACT, Diffusion, VQ-BeT (and TD-MPC) at batch 8 and 64.

Generates its own dataset (DatasetWriter: parquet + h264 mp4, 640x480 like an SO-101 camera), then
runs the real trainer (`apprentice.train.train`) in two data modes on the same data and config:

  cache      Apprentice's path: episodes decoded once into a uint8 frame cache (on the GPU when it
             fits), bf16 autocast on CUDA, fused optimizer, channels_last, background prefetch.
  streaming  the per-sample path LeRobot's trainer uses: a DataLoader whose workers seek and decode
             the mp4 for every sample, fp32, no channels_last (`--dataset.streaming=true`).
  graphs     cache + `--cuda_graphs=true`: the whole step (forward, backward, clip, fused optimizer)
             captured once in a CUDA graph and replayed (small batches are launch-bound).
  graphs_compiled  graphs + `--compile=true` (inductor kernels inside the captured step).
  compiled   cache + `--compile=true` (torch.compile, --compile-mode, default "default").
  ckpt       cache + `--grad_checkpointing=true` (compare max_gpu_mem_gb with `cache`).
  A mode listed twice runs twice (the second as `<mode>_rerun`): with a compiled mode its compile_s
  shows what the persistent compile cache saves.
  cache_v04  Diffusion only: cache with lerobot 0.4's Diffusion defaults (horizon 16, 8 action steps,
             GroupNorm, shared encoder) instead of 0.6's, which are ours now — the loss gap of issue 12.
  lerobot    real lerobot's trainer (`lerobot.scripts.lerobot_train`, 0.4.x) run by another
             interpreter (--lerobot-python) on the same dataset, policy defaults, batch, steps, seed
             and workers, with no pretrained backbone on either side (no downloads here). Its
             samples/s comes from the wall time between its log lines after the first.

Speedups are reported against `lerobot` when it ran, else against `streaming`.

VQ-BeT trains its VQ-VAE first (action windows only, no images) for n_vqvae_training_steps; both sides
run with POLICY_FLAGS' --policy.n_vqvae_training_steps=5, so after the warm-up window every measured
step is the GPT phase (images through the ResNet, the GPT, the heads) — the cost that dominates training.

Each run reports samples_per_s (median of the log windows after the first), final_loss, compile_s
(warm-up wall time: compilation, autotuning, graph capture — apart from samples/s), and on CUDA
max_gpu_mem_gb (peak allocated).

Prints one JSON object. Examples:
  python benchmarks/train_throughput.py --quick            # CPU smoke run of every local mode, tiny data
  python benchmarks/train_throughput.py --device cuda --policies act --batch-sizes 8,64 \
      --modes cache,graphs,graphs_compiled,ckpt --steps-per-batch 8:400,64:80 --log-every 20
  python benchmarks/train_throughput.py --device cuda --batch-sizes 8,64 --steps 30
  python benchmarks/train_throughput.py --device cuda --policies vqbet --batch-sizes 8,64 --steps 30 \
      --modes cache,streaming,lerobot --lerobot-python /path/to/lerobot-venv/bin/python
  python benchmarks/train_throughput.py --device cpu --policies act --batch-sizes 8 --modes cache,lerobot \
      --steps 40 --lerobot-python /path/to/lerobot-venv/bin/python
  TD-MPC (one square camera, like xarm's 84x84; the dataset carries next.reward/next.done):
  python benchmarks/train_throughput.py --device cuda --policies tdmpc --batch-sizes 256 --height 84 --width 84 \
      --modes cache,lerobot --steps 60 --lerobot-python /path/to/lerobot-venv/bin/python
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from apprentice.train import TrainConfig, train
from apprentice.train.reports import read_compile_report, read_metrics

# Per-policy flags given to both trainers (ours and lerobot's).
POLICY_FLAGS = {"vqbet": ["--policy.n_vqvae_training_steps=5"]}
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def make_dataset(root: Path, episodes: int, length: int, height: int, width: int, vcodec: str) -> float:
    from apprentice.dataset import DatasetWriter

    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": JOINTS},
        "observation.images.top": {"dtype": "video", "shape": [height, width, 3],
                                   "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": [6], "names": JOINTS},
        # TD-MPC learns from these; ACT and Diffusion ignore them.
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
    }
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    yy, xx = np.mgrid[0:height, 0:width]
    with DatasetWriter.create(root, features=features, fps=30, robot_type="so101_follower", vcodec=vcodec) as w:
        for _ in range(episodes):
            target = rng.uniform(0.2, 0.8, size=2)
            state = rng.normal(size=6).astype(np.float32)
            for t in range(length):
                cy, cx = target[0] * height, (target[1] + 0.1 * np.sin(t / 10)) * width
                img = np.zeros((height, width, 3), dtype=np.uint8)
                img[..., 0] = (xx * 255 // width).astype(np.uint8)
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < 900] = (250, 220, 30)
                action = (state + 0.05 * rng.normal(size=6)).astype(np.float32)
                reward = np.array([-np.linalg.norm(action[:2] - target)], dtype=np.float32)
                w.add_frame({"observation.state": state, "observation.images.top": img, "action": action,
                             "next.reward": reward, "next.done": np.array([t == length - 1])})
                state = action
            w.save_episode(task="reach the target")
    return time.perf_counter() - t0


LEROBOT_04_DIFFUSION = ["--policy.horizon=16", "--policy.n_action_steps=8", "--policy.use_group_norm=true",
                        "--policy.use_separate_rgb_encoder_per_camera=false"]
MODE_FLAGS = {
    "cache": [],
    "streaming": ["--dataset.streaming=true", "--precision=fp32", "--channels_last=false"],
    "compiled": ["--compile=true"],
    "graphs": ["--cuda_graphs=true"],
    "graphs_compiled": ["--cuda_graphs=true", "--compile=true"],
    "ckpt": ["--grad_checkpointing=true"],
    "cache_v04": LEROBOT_04_DIFFUSION,
}
# --quick: tiny policies so every mode runs on a CPU in seconds (numbers are a smoke test, not a result)
QUICK_POLICY = {
    "act": ["--policy.dim_model=64", "--policy.dim_feedforward=128", "--policy.n_heads=2",
            "--policy.n_encoder_layers=1", "--policy.n_vae_encoder_layers=1", "--policy.chunk_size=10",
            "--policy.n_action_steps=10"],
    "diffusion": ["--policy.down_dims=[32,64]", "--policy.horizon=16", "--policy.n_action_steps=8",
                  "--policy.diffusion_step_embed_dim=16", "--policy.num_train_timesteps=20"],
    "vqbet": ["--policy.gpt_n_layer=2", "--policy.gpt_hidden_dim=64", "--policy.gpt_input_dim=64",
              "--policy.gpt_output_dim=64", "--policy.vqvae_embedding_dim=32", "--policy.crop_shape=[32,32]"],
}


def run_one(root: Path, out: Path, policy: str, batch: int, mode: str, device: str, steps: int, log_every: int,
            workers: int, extra: list[str] | None = None, compile_mode: str = "default") -> dict:
    flags = [f"--policy.type={policy}", f"--dataset.root={root}", f"--output_dir={out}", f"--batch_size={batch}",
             f"--steps={steps}", f"--log_freq={log_every}", "--save_checkpoint=false", f"--policy.device={device}",
             f"--num_workers={workers}", "--seed=0", *POLICY_FLAGS.get(policy, []), *(extra or [])]
    if mode == "cache_v04" and policy != "diffusion":
        raise ValueError("cache_v04 compares Diffusion defaults; it has no meaning for " + policy)
    flags += MODE_FLAGS[mode]
    if "compile" in mode:
        flags.append(f"--compile_mode={compile_mode}")
        torch._dynamo.reset()  # each run compiles its own policy, as a fresh `apprentice train` would
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    train(TrainConfig.from_args(flags))
    wall = time.perf_counter() - t0
    records = read_metrics(out)
    steady = [r["samples_per_s"] for r in records[1:]] or [records[-1]["samples_per_s"]]  # window 1 = warm-up
    result = {"samples_per_s": round(statistics.median(steady), 2), "final_loss": round(records[-1]["loss"], 4),
              "wall_s": round(wall, 1), "steps": steps}
    try:
        report = read_compile_report(out)
        result.update(compile_s=report["compile_s"], captured=report["captured"])
        if report.get("captures"):  # graphs captured in the run (VQ-BeT: one per training phase)
            result["captures"] = report["captures"]
        if report.get("capture_error"):
            result["capture_error"] = report["capture_error"]
    except FileNotFoundError:
        pass
    gc.collect()
    if torch.cuda.is_available():
        result["max_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return result


# lerobot 0.4.x's training log line, e.g.
# INFO 2026-12-01 16:15:42 ot_train.py:435 step:5 smpl:40 ep:0 epch:0.04 loss:60.891 grdn:840.817 lr:1.0e-05 ...
_LEROBOT_LOG = re.compile(
    r"INFO (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \S+ step:(\S+) smpl:\S+ .*?loss:([\d.]+) .*?updt_s:([\d.]+) data_s:([\d.]+)"
)


def _big_number(text: str) -> int:
    """lerobot's format_big_number: 1K, 2.5M, ... back to an int."""
    scale = {"K": 10**3, "M": 10**6, "B": 10**9}
    return round(float(text[:-1]) * scale[text[-1]]) if text[-1] in scale else int(text)


def lerobot_flags(root: Path, out: Path, policy: str, batch: int, device: str, steps: int, log_every: int,
                  workers: int) -> list[str]:
    """lerobot_train's flags for the same dataset, policy defaults, batch, steps, seed and workers as ours."""
    flags = [f"--dataset.repo_id=local/{root.name}", f"--dataset.root={root}", f"--policy.type={policy}",
             f"--policy.device={device}", "--policy.push_to_hub=false",
             "--save_checkpoint=false", "--wandb.enable=false", f"--batch_size={batch}", f"--steps={steps}",
             f"--log_freq={log_every}", f"--num_workers={workers}", "--seed=0", f"--output_dir={out}",
             *POLICY_FLAGS.get(policy, [])]
    if policy != "tdmpc":  # TD-MPC has no pretrained backbone field
        flags.append("--policy.pretrained_backbone_weights=null")
    return flags


def parse_lerobot_log(log: str, samples_per_step: int) -> dict:
    """samples/s, final loss and the loss curve from lerobot_train's log lines (`samples_per_step`: the batch
    times the number of processes, since `step` counts optimizer steps of every process at once)."""
    rows = [(datetime.fromisoformat(m[0]), _big_number(m[1]), float(m[2]), float(m[3]) + float(m[4]))
            for m in _LEROBOT_LOG.findall(log)]
    if len(rows) < 2:
        raise RuntimeError(f"lerobot_train: {len(rows)} log lines: {log[-600:]}")
    (t_first, step_first, _, _), (t_last, step_last, loss, _) = rows[0], rows[-1]
    seconds = (t_last - t_first).total_seconds()
    result = {"samples_per_s": round((step_last - step_first) * samples_per_step / seconds, 2),
              # lerobot's own per-step timers (update + data), which leave out the loop's other work
              "samples_per_s_timers": round(statistics.median(samples_per_step / r[3] for r in rows[1:]), 2),
              "final_loss": round(loss, 4),
              "loss_curve": [[r[1] * samples_per_step, round(r[2], 4)] for r in rows]}
    mem = re.findall(r" mem_gb:([\d.]+)", log)  # 0.6.x on CUDA: the max over ranks of max_memory_allocated
    if mem:
        result["max_gpu_mem_gb"] = max(map(float, mem))
    return result


def run_lerobot(python: str, root: Path, out: Path, policy: str, batch: int, device: str, steps: int,
                log_every: int, workers: int) -> dict:
    flags = lerobot_flags(root, out, policy, batch, device, steps, log_every, workers)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-m", "lerobot.scripts.lerobot_train", *flags], env=env, capture_output=True,
                          text=True, errors="replace")
    wall = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"lerobot_train exit {proc.returncode}: {log[-600:]}")
    result = parse_lerobot_log(log, batch)
    result.pop("loss_curve")
    backend = subprocess.run([python, "-c", "import importlib.util as u; print(bool(u.find_spec('torchcodec')))"],
                             capture_output=True, text=True).stdout.strip()
    return {**result, "wall_s": round(wall, 1), "steps": steps,
            "video_backend": "torchcodec" if backend == "True" else "pyav"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--policies", default="act,diffusion", help="comma-separated: act, diffusion, vqbet")
    parser.add_argument("--batch-sizes", default="8,64")
    parser.add_argument("--modes", default="cache,streaming")
    parser.add_argument("--steps", type=int, default=30, help="steps per run; the first log window is warm-up")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--length", type=int, default=150)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--workers", type=int, default=4, help="streaming mode's DataLoader workers (LeRobot: 4)")
    parser.add_argument("--dataset-root", default=None, help="dataset location; generated there when missing")
    parser.add_argument("--vcodec", default="libsvtav1", help="libsvtav1 (LeRobot's default, AV1) or h264")
    parser.add_argument("--lerobot-python", default=None,
                        help="interpreter with lerobot 0.4.x installed, for the `lerobot` mode")
    parser.add_argument("--steps-per-batch", default=None,
                        help="per-batch step counts, e.g. 8:400,64:80 (the issue's table); overrides --steps")
    parser.add_argument("--compile-mode", default="default", help="--compile_mode for the compiled modes")
    parser.add_argument("--extra-flags", default="", help="train flags added to every Apprentice run, e.g. "
                        "'--policy.down_dims=[64,128,256] --policy.scheduler_warmup_steps=100'")
    parser.add_argument("--quick", action="store_true",
                        help="CPU smoke run: tiny dataset and policies, modes cache,ckpt (+ graphs on CUDA)")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    extra: dict[str, list[str]] = {}
    if args.quick:
        args.episodes, args.length, args.height, args.width, args.vcodec = 2, 40, 96, 128, "h264"
        args.batch_sizes, args.steps, args.log_every = "8", 6, 2
        if args.modes == "cache,streaming":
            args.modes = "cache,ckpt,graphs" if args.device == "cuda" else "cache,ckpt,cache_v04"
        extra = dict(QUICK_POLICY)
    for name in args.policies.split(","):
        extra[name] = [*extra.get(name, []), *args.extra_flags.split()]
    per_batch = {int(k): int(v) for k, v in (kv.split(":") for kv in args.steps_per_batch.split(","))} \
        if args.steps_per_batch else {}

    work = Path(tempfile.mkdtemp(prefix="apprentice-bench-"))
    root = Path(args.dataset_root) if args.dataset_root else work / "dataset"
    results: dict = {"device": args.device, "torch": torch.__version__, "cpu_count": os.cpu_count(),
                     "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
                     "dataset": {"root": str(root)}, "runs": {}}
    if not root.exists():
        results["dataset"]["write_s"] = round(make_dataset(root, args.episodes, args.length, args.height,
                                                           args.width, args.vcodec), 1)
    info = json.loads((root / "meta" / "info.json").read_text())
    image = next((f["shape"][:2] for f in info["features"].values() if f["dtype"] == "video"), None)
    results["dataset"].update(episodes=info["total_episodes"], frames=info["total_frames"], image=image,
                              vcodec=next((f.get("info", {}).get("video.codec") for f in info["features"].values()
                                           if f["dtype"] == "video"), None))
    for policy in args.policies.split(","):
        for batch in map(int, args.batch_sizes.split(",")):
            row = {}
            steps = per_batch.get(batch, args.steps)
            for mode in args.modes.split(","):
                if mode == "cache_v04" and policy != "diffusion":
                    continue
                # A mode named twice runs twice; the second ("<mode>_rerun") shows the compile cache at work.
                key = f"{mode}_rerun" if mode in row else mode
                try:
                    if mode == "lerobot":
                        if not args.lerobot_python:
                            raise ValueError("mode lerobot needs --lerobot-python")
                        row[key] = run_lerobot(args.lerobot_python, root, work / f"{policy}-{batch}-{key}", policy,
                                               batch, args.device, steps, args.log_every, args.workers)
                    else:
                        row[key] = run_one(root, work / f"{policy}-{batch}-{key}", policy, batch, mode,
                                           args.device, steps, args.log_every, args.workers, extra.get(policy),
                                           args.compile_mode)
                except Exception as exc:  # report the failure in the JSON and measure the rest
                    row[key] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                finally:
                    print(f"# {policy} b{batch} {key}: {row.get(key)}", file=sys.stderr, flush=True)
            base = row.get("lerobot", {}).get("samples_per_s") or row.get("streaming", {}).get("samples_per_s")
            row["speedup_baseline"] = "lerobot" if row.get("lerobot", {}).get("samples_per_s") else "streaming"
            for mode in MODE_FLAGS:
                if mode == row["speedup_baseline"]:
                    continue
                if base and "samples_per_s" in row.get(mode, {}):
                    row[f"speedup_{mode}"] = round(row[mode]["samples_per_s"] / base, 2)
            cache_sps = row.get("cache", {}).get("samples_per_s")
            for mode in ("graphs", "graphs_compiled", "compiled"):
                if cache_sps and "samples_per_s" in row.get(mode, {}):
                    row[f"{mode}_vs_cache"] = round(row[mode]["samples_per_s"] / cache_sps, 2)
            if "max_gpu_mem_gb" in row.get("cache", {}) and "max_gpu_mem_gb" in row.get("ckpt", {}):
                saved = row["cache"]["max_gpu_mem_gb"] - row["ckpt"]["max_gpu_mem_gb"]
                row["grad_checkpointing_saves_gb"] = round(saved, 2)
            results["runs"][f"{policy}_b{batch}"] = row
    text = json.dumps(results)
    if args.json_out:
        Path(args.json_out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
