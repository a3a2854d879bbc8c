"""Activation memory of one training step with and without `--grad_checkpointing`, on any CPU.

Runs ACT and Diffusion (lerobot's default configs, one 480x640 camera) forward on the meta device
(shapes only) and adds up the bytes of every tensor autograd saves for backward (a saved-tensors
hook outside the checkpointed blocks: what a checkpointed block keeps is only its inputs). fp32
sizes; under bf16 autocast most activations are half. Weights, gradients and optimizer state
(4 + 4 + 8 bytes per parameter) are listed apart. The measured peak on a GPU comes from
`benchmarks/train_throughput.py --modes cache,ckpt` (max_gpu_mem_gb).

  python benchmarks/train_activation_memory.py --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from apprentice.policies import make_config, make_policy


def build(kind: str, height: int, width: int) -> torch.nn.Module:
    feats = {"observation.state": {"type": "STATE", "shape": [6]},
             "observation.images.top": {"type": "VISUAL", "shape": [3, height, width]}}
    config = make_config(kind, input_features=feats, output_features={"action": {"type": "ACTION", "shape": [6]}})
    stats = {k: {"mean": torch.zeros(6), "std": torch.ones(6), "min": -torch.ones(6), "max": torch.ones(6)}
             for k in ("observation.state", "action")}
    stats["observation.images.top"] = {"mean": torch.zeros(3, 1, 1), "std": torch.ones(3, 1, 1)}
    return make_policy(config, stats).train()


def batch_for(policy: torch.nn.Module, batch_size: int, device: str) -> dict[str, torch.Tensor]:
    cfg = policy.config
    n_obs = len(cfg.observation_delta_indices or []) or None
    n_act = len(cfg.action_delta_indices)
    lead = (batch_size, n_obs) if n_obs else (batch_size,)
    batch = {"observation.state": torch.zeros(*lead, 6, device=device),
             "observation.images.top": torch.zeros(*lead, 3, *cfg.image_features["observation.images.top"].shape[1:],
                                                   device=device),
             "action": torch.zeros(batch_size, n_act, 6, device=device),
             "action_is_pad": torch.zeros(batch_size, n_act, dtype=torch.bool, device=device)}
    return batch


def saved_bytes(policy: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = policy(batch)
    del loss
    return sum(seen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--policies", default="act,diffusion")
    args = parser.parse_args()
    gib = 2**30
    result: dict = {"batch_size": args.batch_size, "image": [args.height, args.width], "device": "meta",
                    "unit": "GiB, fp32", "policies": {}}
    for kind in args.policies.split(","):
        policy = build(kind, args.height, args.width).to("meta")
        batch = batch_for(policy, args.batch_size, "meta")
        plain = saved_bytes(policy, batch)
        policy.set_grad_checkpointing(True)
        ckpt = saved_bytes(policy, batch)
        n_params = sum(p.numel() for p in policy.parameters())
        result["policies"][kind] = {
            "params_m": round(n_params / 1e6, 1),
            "weights_grads_adam_gib": round(n_params * 16 / gib, 2),
            "activations_gib": round(plain / gib, 2),
            "activations_grad_checkpointing_gib": round(ckpt / gib, 2),
            "saved_gib": round((plain - ckpt) / gib, 2),
            "saved_pct": round(100 * (plain - ckpt) / plain, 1),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
