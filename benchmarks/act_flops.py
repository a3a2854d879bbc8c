"""FLOPs of one ACT training step (forward + backward) at each batch size, against the H200's bf16 peak.

Counts with torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, attention; elementwise ops
and the optimizer's ~12 FLOPs per parameter are not counted — under 0.1% here). The model runs on the
meta device by default: shapes only, so the count is exact and takes seconds on any CPU.

Achieved fraction of peak = samples_per_s * flops_per_sample / peak. Pass measured throughputs
(`benchmarks/train_throughput.py` on the GPU) with --samples-per-s 8=2500,64=4000 to get it printed.

Prints one JSON object:
  python benchmarks/act_flops.py                       # ACT defaults, one 480x640 camera, batch 8 and 64
  python benchmarks/act_flops.py --samples-per-s 8=2500,64=4000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from apprentice.policies import make_config, make_policy

H200_BF16_DENSE_TFLOPS = 989.0  # NVIDIA's H200 SXM spec: 1979 with 2:4 sparsity, 989 dense


def build_policy(height: int, width: int, cameras: int, state_dim: int, action_dim: int) -> torch.nn.Module:
    cams = {f"observation.images.cam{i}": {"type": "VISUAL", "shape": [3, height, width]} for i in range(cameras)}
    config = make_config(
        "act",
        input_features={"observation.state": {"type": "STATE", "shape": [state_dim]}, **cams},
        output_features={"action": {"type": "ACTION", "shape": [action_dim]}},
    )
    stats = {"observation.state": {"mean": torch.zeros(state_dim), "std": torch.ones(state_dim)},
             "action": {"mean": torch.zeros(action_dim), "std": torch.ones(action_dim)}}
    stats |= {k: {"mean": torch.zeros(3, 1, 1), "std": torch.ones(3, 1, 1)} for k in cams}
    return make_policy(config, stats).train()


def step_flops(policy: torch.nn.Module, batch_size: int, device: str) -> dict[str, float]:
    cfg = policy.config
    batch = {"observation.state": torch.randn(batch_size, cfg.robot_state_feature.shape[0], device=device),
             "action": torch.randn(batch_size, cfg.chunk_size, cfg.action_feature.shape[0], device=device),
             "action_is_pad": torch.zeros(batch_size, cfg.chunk_size, dtype=torch.bool, device=device)}
    for key, ft in cfg.image_features.items():
        batch[key] = torch.rand(batch_size, *ft.shape, device=device)
    with FlopCounterMode(display=False) as fwd_counter:
        loss, _ = policy(batch)
    forward = fwd_counter.get_total_flops()
    with FlopCounterMode(display=False) as bwd_counter:
        loss.backward()
    backward = bwd_counter.get_total_flops()
    policy.zero_grad(set_to_none=True)
    return {"forward": forward, "backward": backward, "total": forward + backward}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="8,64")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--state-dim", type=int, default=6)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--device", default="meta", help="meta (shapes only, default), cpu or cuda")
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_TFLOPS)
    parser.add_argument("--samples-per-s", default=None, help="measured throughput per batch, e.g. 8=2500,64=4000")
    args = parser.parse_args()

    policy = build_policy(args.height, args.width, args.cameras, args.state_dim, args.action_dim).to(args.device)
    measured = {int(k): float(v) for k, v in (kv.split("=") for kv in args.samples_per_s.split(","))} \
        if args.samples_per_s else {}
    peak = args.peak_tflops * 1e12
    result: dict = {"policy": "act (lerobot defaults: resnet18, dim 512, 4+1 layers, VAE, chunk 100)",
                    "image": [args.height, args.width], "cameras": args.cameras,
                    "params_m": round(sum(p.numel() for p in policy.parameters()) / 1e6, 2),
                    "peak_bf16_dense_tflops": args.peak_tflops, "counted": "forward + backward (FlopCounterMode)",
                    "batches": {}}
    for batch in map(int, args.batch_sizes.split(",")):
        flops = step_flops(policy, batch, args.device)
        per_sample = flops["total"] / batch
        row = {"step_tflop": round(flops["total"] / 1e12, 4), "forward_tflop": round(flops["forward"] / 1e12, 4),
               "backward_tflop": round(flops["backward"] / 1e12, 4), "per_sample_gflop": round(per_sample / 1e9, 2),
               "samples_per_s_at_peak": round(peak / per_sample, 1)}
        if batch in measured:
            row["measured_samples_per_s"] = measured[batch]
            row["achieved_tflops"] = round(measured[batch] * per_sample / 1e12, 2)
            row["achieved_pct_of_peak"] = round(100 * measured[batch] * per_sample / peak, 2)
        result["batches"][str(batch)] = row
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
