"""Training throughput and peak host/GPU memory against dataset size, with the frame cache bounded by
`--cache_max_gb` — and the memory a smaller `--policy.input_shapes` saves for ACT and Diffusion at batch 64.

Part 1 (`sizes`): one dataset is generated (DatasetWriter, 640x480 by default) with the largest size's
episodes — a base of `--base-episodes` written frame by frame, then doubled by `merge_datasets`, which copies
video packets without re-encoding — and each size trains on its first N episodes (`--dataset.episodes`).
Every run is a fresh `apprentice train` process: peak RSS is its VmHWM (and its growth over the RSS after
imports), GPU peak is torch.cuda.max_memory_allocated, samples/s is the median over log windows after the
first (which holds the cache fill). With `--budget-gb` below a size's decoded frames, that run trains from
the disk cache (under --cache-dir); runs at or under it train from memory. Sizes are reported with the
host's MemTotal, so a size larger than RAM is visible as such.

Part 2 (`input_shapes`): for ACT and Diffusion at `--shape-batch` (64), the peak memory of a few training
steps at the camera's size and at each `--shapes` size (fresh process each; GPU: max_memory_allocated; CPU:
peak RSS growth over the process's RSS before the first step — an estimate that includes allocator caching).

Prints one JSON object. Examples:
  python benchmarks/train_memory.py --quick                       # CPU, small frames, a minute or two
  python benchmarks/train_memory.py --device cuda --sizes 4,16,64 --episode-frames 300 --budget-gb 8 \\
      --steps 120 --batch-size 64 --workers 12 --cache-dir /tmp/frames --json-out /tmp/train_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# --quick: ACT's transformer shrunk (its ResNet-18 stays) so that CPU runs take seconds, not minutes.
TINY = {"dim_model": 64, "dim_feedforward": 128, "n_heads": 2, "n_encoder_layers": 1, "n_decoder_layers": 1,
        "n_vae_encoder_layers": 1, "chunk_size": 20, "n_action_steps": 20}
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
IMG = "observation.images.top"


def _proc_bytes(field: str, path: str = "/proc/self/status") -> int:
    """A `Name:   N kB` line of /proc/self/status (VmRSS, VmHWM) or /proc/meminfo, in bytes."""
    with open(path) as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _rss(field: str) -> int:
    return _proc_bytes(field)


def _meminfo(field: str) -> int:
    return _proc_bytes(field, "/proc/meminfo")


def make_dataset(root: Path, base: int, total: int, length: int, height: int, width: int, vcodec: str) -> float:
    """`base` episodes written frame by frame, doubled by packet-copy merges until there are >= `total`."""
    from apprentice.dataset import DatasetWriter
    from apprentice.dataset.edit import merge_datasets

    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": JOINTS},
        IMG: {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": [6], "names": JOINTS},
    }
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    yy, xx = np.mgrid[0:height, 0:width]
    current = root.with_name(root.name + "-x1")
    with DatasetWriter.create(current, features=features, fps=30, robot_type="so101_follower", vcodec=vcodec) as w:
        for _ in range(base):
            target = rng.uniform(0.2, 0.8, size=2)
            state = rng.normal(size=6).astype(np.float32)
            for t in range(length):
                cy, cx = target[0] * height, (target[1] + 0.1 * np.sin(t / 10)) * width
                img = np.zeros((height, width, 3), dtype=np.uint8)
                img[..., 0] = (xx * 255 // width).astype(np.uint8)
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < (height // 16) ** 2] = (250, 220, 30)
                action = (state + 0.05 * rng.normal(size=6)).astype(np.float32)
                w.add_frame({"observation.state": state, IMG: img, "action": action})
                state = action
            w.save_episode(task="reach the target")
    episodes, k = base, 1
    while episodes < total:
        doubled = root.with_name(f"{root.name}-x{2 * k}")
        merge_datasets([current, current], out=doubled)
        shutil.rmtree(current)
        current, episodes, k = doubled, episodes * 2, k * 2
    current.rename(root)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------- children
def child_train(args: argparse.Namespace) -> dict:
    """One `apprentice train` run in this process; what it measured."""
    import logging

    import torch

    from apprentice.train import TrainConfig, train
    from apprentice.train.reports import read_metrics

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logging.getLogger("apprentice.train").addHandler(Keep())
    logging.getLogger("apprentice.train").setLevel(logging.INFO)
    flags = json.loads(args.child_flags)
    cfg = TrainConfig.from_args(flags)
    base = _rss("VmRSS")
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    records = read_metrics(cfg.output_dir)
    steady = [r["samples_per_s"] for r in records[1:]] or [records[-1]["samples_per_s"]]
    plan = next((m for m in messages if m.startswith("frame cache:")), "")
    fill = next((m for m in messages if m.startswith("decoded ")), "")
    out = {"samples_per_s": round(statistics.median(steady), 1), "final_loss": round(records[-1]["loss"], 4),
           "wall_s": round(wall, 1), "cache": plan, "fill": fill,
           "peak_rss_gb": round(_rss("VmHWM") / 2**30, 3), "rss_after_imports_gb": round(base / 2**30, 3)}
    if torch.cuda.is_available() and cfg.device.startswith("cuda"):
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return out


def child_shape(args: argparse.Namespace) -> dict:
    """Peak memory of a few training steps of one policy at one camera size, on random data."""
    import torch

    from apprentice.policies import make_config, make_policy, stats_to_tensors

    spec = json.loads(args.child_shape)
    device = torch.device(spec["device"])
    torch.manual_seed(0)
    c, h, w = spec["shape"]
    inputs = {"observation.state": {"type": "STATE", "shape": [6]}, IMG: {"type": "VISUAL", "shape": [c, h, w]}}
    outputs = {"action": {"type": "ACTION", "shape": [6]}}
    fields = dict(spec.get("fields") or {})
    config = make_config(spec["policy"], input_features=inputs, output_features=outputs, **fields)
    stats = {}
    for k in (*inputs, *outputs):
        shape = (3, 1, 1) if k == IMG else (6,)
        stats[k] = {"mean": np.zeros(shape), "std": np.ones(shape), "min": -np.ones(shape), "max": np.ones(shape)}
    policy = make_policy(config, stats_to_tensors(stats)).to(device).train()
    optimizer = policy.make_optimizer(lr=1e-5)
    b = spec["batch"]
    obs_steps = getattr(config, "n_obs_steps", 1)
    horizon = len(config.action_delta_indices)
    shape_img = (b, obs_steps, c, h, w) if config.observation_delta_indices else (b, c, h, w)
    shape_state = (b, obs_steps, 6) if config.observation_delta_indices else (b, 6)
    batch = {IMG: torch.rand(shape_img, device=device), "observation.state": torch.randn(shape_state, device=device),
             "action": torch.randn(b, horizon, 6, device=device),
             "action_is_pad": torch.zeros(b, horizon, dtype=torch.bool, device=device)}
    base = _rss("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as fh:  # peak RSS counts from here
        fh.write("5")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    t0 = time.perf_counter()
    for _ in range(spec["steps"]):
        if autocast is not None:
            with autocast:
                loss, _ = policy(batch)
        else:
            loss, _ = policy(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    out = {"step_s": round((time.perf_counter() - t0) / spec["steps"], 3),
           "peak_rss_growth_gb": round((_rss("VmHWM") - base) / 2**30, 3)}
    if device.type == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        out["peak_gpu_over_weights_gb"] = round((torch.cuda.max_memory_allocated() - before) / 2**30, 3)
    return out


def child_data(args: argparse.Namespace) -> dict:
    """The data path alone (cache fill, then batches gathered and moved to the device as training does):
    its samples/s and peak RSS, with no model competing for the CPU."""
    import torch

    from apprentice.dataset import LeRobotDataset
    from apprentice.policies import make_config
    from apprentice.train import TrainConfig
    from apprentice.train.data import Prefetcher, SampleOrder, build_frame_cache, to_device

    spec = json.loads(args.child_data)
    ds = LeRobotDataset(spec["root"], episodes=list(range(spec["episodes"])))
    inputs = {"observation.state": {"type": "STATE", "shape": [6]},
              IMG: {"type": "VISUAL", "shape": [3, spec["height"], spec["width"]]}}
    config = make_config(spec["policy"], input_features=inputs,
                         output_features={"action": {"type": "ACTION", "shape": [6]}}, **spec["fields"])
    cfg = TrainConfig(batch_size=spec["batch"], cache_max_gb=spec["budget_gb"], cache_dir=spec["cache_dir"],
                      num_workers=spec["workers"])
    device = torch.device(spec["device"])
    base = _rss("VmRSS")
    t0 = time.perf_counter()
    messages: list[str] = []
    cache = build_frame_cache(cfg, ds, config, device, messages.append)
    fill_s = time.perf_counter() - t0
    order = SampleOrder(len(cache), spec["batch"], seed=0, device=cache.device)
    source = Prefetcher(cache, order.batches(0))
    n = min(spec["batches"], order.per_epoch)
    to_device(source.next(), device, [IMG])  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        batch = to_device(source.next(), device, [IMG])
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = n * spec["batch"] / (time.perf_counter() - t0)
    source.close()
    del batch
    return {"data_samples_per_s": round(rate, 1), "fill_s": round(fill_s, 2), "cache": messages[0],
            "data_peak_rss_growth_gb": round((_rss("VmHWM") - base) / 2**30, 3)}


def _run_child(kind: str, payload: str, timeout: float) -> dict:
    run = subprocess.run([sys.executable, __file__, f"--child-{kind}", payload], capture_output=True, text=True,
                         timeout=timeout)
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1][:300] if run.stderr.strip() else f"exit {run.returncode}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU, 96x128 frames, small sizes and steps")
    parser.add_argument("--device", default=None)
    parser.add_argument("--sizes", default="2,8,32", help="dataset sizes, in episodes")
    parser.add_argument("--base-episodes", type=int, default=2, help="episodes written frame by frame")
    parser.add_argument("--episode-frames", type=int, default=150)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--vcodec", default="h264", help="h264 (fast to generate) or libsvtav1 (LeRobot's default)")
    parser.add_argument("--budget-gb", type=float, default=2.0, help="--cache_max_gb of every run")
    parser.add_argument("--policy", default="act")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4, help="--num_workers of every run")
    parser.add_argument("--cache-dir", default=None, help="--cache_dir (default: a temporary dir, removed after)")
    parser.add_argument("--dataset-root", default=None, help="reuse/generate the dataset here")
    parser.add_argument("--shapes", default="240x320,120x160", help="smaller input_shapes to compare (HxW)")
    parser.add_argument("--shape-batch", type=int, default=64)
    parser.add_argument("--shape-steps", type=int, default=3)
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--skip-shapes", action="store_true")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--child-train", dest="child_flags", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-shape", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-batches", type=int, default=200, help="batches the data-path-only run draws")
    args = parser.parse_args()
    if args.child_flags:
        print(json.dumps(child_train(args)))
        return 0
    if args.child_shape:
        print(json.dumps(child_shape(args)))
        return 0
    if args.child_data:
        print(json.dumps(child_data(args)))
        return 0
    if args.quick:
        args.device = args.device or "cpu"
        args.sizes, args.base_episodes, args.episode_frames = "2,4,8", 2, 60
        args.height, args.width, args.budget_gb = 96, 128, 0.006
        args.batch_size, args.steps, args.log_every, args.workers = 8, 12, 4, 2
        args.shapes, args.shape_batch, args.shape_steps, args.data_batches = "48x64", 64, 1, 40
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(tempfile.mkdtemp(prefix="apprentice-train-memory-"))
    cache_dir = Path(args.cache_dir) if args.cache_dir else work / "frames"
    results: dict = {"device": device, "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
                     "cpu_count": os.cpu_count(), "host_mem_total_gb": round(_meminfo("MemTotal:") / 2**30, 1),
                     "budget_gb": args.budget_gb, "policy": args.policy, "batch_size": args.batch_size,
                     "workers": args.workers, "sizes": [], "input_shapes": {}}
    try:
        if not args.skip_sizes:
            sizes = sorted(int(s) for s in args.sizes.split(","))
            root = Path(args.dataset_root) if args.dataset_root else work / "dataset"
            if not (root / "meta" / "info.json").is_file():
                results["dataset_write_s"] = round(make_dataset(root, args.base_episodes, sizes[-1],
                                                                args.episode_frames, args.height, args.width,
                                                                args.vcodec), 1)
            frame_bytes = args.height * args.width * 3
            for n in sizes:
                out = work / f"run-{n}"
                flags = [f"--policy.type={args.policy}", f"--dataset.root={root}",
                         f"--dataset.episodes=[{','.join(map(str, range(n)))}]", f"--output_dir={out}",
                         f"--batch_size={args.batch_size}", f"--steps={args.steps}", f"--log_freq={args.log_every}",
                         "--save_checkpoint=false", f"--policy.device={device}", f"--num_workers={args.workers}",
                         f"--cache_max_gb={args.budget_gb}", f"--cache_dir={cache_dir}", "--seed=0"]
                row = {"episodes": n, "frames": n * args.episode_frames,
                       "decoded_gb": round(n * args.episode_frames * frame_bytes / 2**30, 3)}
                data = {"root": str(root), "episodes": n, "height": args.height, "width": args.width,
                        "policy": args.policy, "batch": args.batch_size, "budget_gb": args.budget_gb,
                        "cache_dir": str(cache_dir), "workers": args.workers, "device": device,
                        "batches": args.data_batches, "fields": TINY if args.quick else {}}
                row.update(_run_child("data", json.dumps(data), timeout=3600))
                if args.quick:
                    flags += [f"--policy.{k}={v}" for k, v in TINY.items()]
                row.update(_run_child("train", json.dumps(flags), timeout=3600))
                results["sizes"].append(row)
                print(f"# size {n}: {row}", file=sys.stderr, flush=True)
                shutil.rmtree(out, ignore_errors=True)
        if not args.skip_shapes:
            full = (3, args.height, args.width)
            shapes = [full] + [(3, *map(int, s.split("x"))) for s in args.shapes.split(",") if s]
            for policy in ("act", "diffusion"):
                fields: dict = {}
                if device == "cpu":  # CPU estimate: a small transformer / UNet; the ResNet-18 encoder is stock
                    fields = dict(TINY) if policy == "act" else {"down_dims": [64, 128, 256]}
                rows = {}
                for shape in shapes:
                    spec = {"policy": policy, "shape": list(shape), "batch": args.shape_batch, "device": device,
                            "steps": args.shape_steps, "fields": fields}
                    rows[f"{shape[1]}x{shape[2]}"] = _run_child("shape", json.dumps(spec), timeout=1800)
                    print(f"# {policy} {shape}: {rows[f'{shape[1]}x{shape[2]}']}", file=sys.stderr, flush=True)
                key = "peak_gpu_gb" if device == "cuda" else "peak_rss_growth_gb"
                ref = rows[f"{full[1]}x{full[2]}"].get(key)
                for row in rows.values():
                    if ref is not None and key in row:
                        row["saved_vs_full_gb"] = round(ref - row[key], 3)
                results["input_shapes"][policy] = {"batch": args.shape_batch, "measure": key, "runs": rows}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results)
    if args.json_out:
        Path(args.json_out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
