"""Fine-tuning step of full-size π0 / π0.5 on one GPU: samples/s and peak memory at batch 32.

The model is the real size — PaliGemma-3B (SigLIP So400m/14 + Gemma 2B, vocab 257152) and the
Gemma-300M action expert, the config values of lerobot's `gemma_2b`/`gemma_300m` written out in
`apprentice.policies.paligemma.variants` — with random weights (no Hub here). The prompt is already
tokenized: random ids below the vocab size, `tokenizer_max_length` long with a right-padded tail, so no
tokenizer download is needed and the sequence lengths are exactly those of real prompts.

Each step: forward (bf16 autocast), backward, grad clip 1.0, fused AdamW, with gradient checkpointing
on (`--no-checkpointing` to compare). Reports the median samples/s over the timed steps and the peak
allocated CUDA memory.

`--lerobot-python PY` also runs lerobot 0.6.1's PI0Policy/PI05Policy at the same sizes and batch in
that interpreter (it needs lerobot + transformers there); when it cannot run (no transformers, an API
it needs missing from stock transformers, out of memory) the JSON says why instead of a number.

The models are built directly on the device (benchmarks/vla_build.py; the stock CPU init of 3.5 B parameters
takes minutes). Progress goes to stderr (`# built in X s`, `# step i`, `# result POLICY {...}`) and `--json-out
FILE` is rewritten after each finished policy, so a run cut by a timeout still returns what finished.

Prints one JSON object. Examples:
  python benchmarks/pi0_train.py --quick                      # CPU, tiny sizes: the code path only
  python benchmarks/pi0_train.py --device cuda --policies pi0,pi05 --batch-size 32 --steps 10
  python benchmarks/pi0_train.py --device cuda --lerobot-python /path/to/lerobot-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from apprentice.policies import make_policy
from apprentice.policies.paligemma import GemmaVariant, VisionVariant, register_variant
from vla_build import fast_build, progress, write_partial

QUICK_VLM = GemmaVariant(width=64, depth=2, mlp_dim=128, num_heads=2, num_kv_heads=1, head_dim=32, vocab_size=512,
                         vision=VisionVariant(64, 128, 1, 2, 14, 64))
QUICK_EXPERT = GemmaVariant(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=32, vocab_size=512)


def _stats(dim: int) -> dict[str, torch.Tensor]:
    return {"mean": torch.zeros(dim), "std": torch.ones(dim), "q01": -torch.ones(dim), "q99": torch.ones(dim),
            "min": -torch.ones(dim), "max": torch.ones(dim)}


def _batch(args: argparse.Namespace, vocab: int, max_len: int, device: str) -> dict[str, Any]:
    b, res = args.batch_size, args.resolution
    batch: dict[str, Any] = {f"observation.images.cam{i}": torch.rand(b, 3, res, res, device=device)
                             for i in range(args.cameras)}
    batch["observation.state"] = torch.randn(b, args.state_dim, device=device)
    batch["action"] = torch.randn(b, args.chunk_size, args.action_dim, device=device)
    lengths = torch.randint(max_len // 3, max_len, (b,), device=device)
    mask = torch.arange(max_len, device=device)[None] < lengths[:, None]
    batch["observation.language.tokens"] = torch.randint(1, vocab, (b, max_len), device=device) * mask
    batch["observation.language.attention_mask"] = mask
    return batch


def build_policy(policy_type: str, args: argparse.Namespace, device: str | torch.device) -> tuple[Any, float]:
    """The full-size (or --quick tiny) random-weight policy built on `device`, and the seconds it took."""
    feats = {
        "input_features": {**{f"observation.images.cam{i}": {"type": "VISUAL", "shape": [3, args.resolution,
                                                                                     args.resolution]}
                              for i in range(args.cameras)},
                           "observation.state": {"type": "STATE", "shape": [args.state_dim]}},
        "output_features": {"action": {"type": "ACTION", "shape": [args.action_dim]}},
    }
    fields: dict[str, Any] = {"chunk_size": args.chunk_size, "n_action_steps": args.chunk_size,
                              "image_resolution": [args.resolution, args.resolution],
                              "train_expert_only": args.train_expert_only, "dtype": args.dtype}
    if args.quick:
        register_variant("quick_vlm", QUICK_VLM)
        register_variant("quick_expert", QUICK_EXPERT)
        fields |= {"paligemma_variant": "quick_vlm", "action_expert_variant": "quick_expert"}
    stats = {"observation.state": _stats(args.state_dim), "action": _stats(args.action_dim)}
    t0 = time.perf_counter()
    with fast_build(device):
        policy = make_policy(policy_type, stats, **feats, **fields)
    return policy.to(device).train(), time.perf_counter() - t0


def timed_steps(policy: Any, params: list, optimizer: Any, batch: dict, device: torch.device,
                args: argparse.Namespace, label: str | None) -> tuple[list[float], list[float]]:
    """`args.warmup + args.steps` fine-tuning steps (bf16 autocast on CUDA, clip, optimizer): the timed steps'
    seconds and every step's loss. Progress lines when `label` is given."""
    cuda = device.type == "cuda"
    times, losses = [], []
    for step in range(args.warmup + args.steps):
        if cuda:
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss, _ = policy(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, policy.config.optimizer_grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # host read = end of step
        if step >= args.warmup:
            times.append(time.perf_counter() - t)
        if label is not None:
            progress(f"{label}: step {step} {time.perf_counter() - t:.2f} s{' (warmup)' * (step < args.warmup)}")
    return times, losses


def run_ours(policy_type: str, args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    policy, build_s = build_policy(policy_type, args, device)
    progress(f"{policy_type}: built in {build_s:.1f} s")
    if args.checkpointing:
        policy.set_grad_checkpointing(True)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = policy.make_optimizer(fused=device == "cuda")
    vocab = QUICK_VLM.vocab_size if args.quick else 257152
    batch = _batch(args, vocab, policy.config.tokenizer_max_length, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = timed_steps(policy, params, optimizer, batch, torch.device(device), args, policy_type)
    out = {
        "samples_per_s": round(args.batch_size / statistics.median(times), 3),
        "step_s": round(statistics.median(times), 4),
        "params_total_m": round(sum(p.numel() for p in policy.parameters()) / 1e6, 1),
        "params_trained_m": round(sum(p.numel() for p in params) / 1e6, 1),
        "build_s": round(build_s, 1),
        "final_loss": round(losses[-1], 4),
    }
    if device == "cuda":
        out["max_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


LEROBOT_SCRIPT = r"""
import json, statistics, sys, time, torch
args = json.loads(sys.argv[1])
sys.path.insert(0, args["benchmarks_dir"])
from vla_build import fast_build, progress
try:
    from lerobot.configs.types import FeatureType, PolicyFeature
    if args["type"] == "pi0":
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as C
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy as P
    else:
        from lerobot.policies.pi05.configuration_pi05 import PI05Config as C
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy as P
    res, b, dev = args["resolution"], args["batch_size"], args["device"]
    inputs = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, res, res))
              for i in range(args["cameras"])}
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (args["state_dim"],))
    cfg = C(input_features=inputs, output_features={"action": PolicyFeature(FeatureType.ACTION, (args["action_dim"],))},
            chunk_size=args["chunk_size"], n_action_steps=args["chunk_size"], device=dev, dtype=args["dtype"],
            gradient_checkpointing=args["checkpointing"], train_expert_only=args["train_expert_only"])
    t0 = time.perf_counter()
    with fast_build(dev):
        policy = P(cfg)
    policy = policy.to(dev).train()
    progress(f"lerobot {args['type']}: built in {time.perf_counter() - t0:.1f} s")
    L = cfg.tokenizer_max_length
    batch = {k: torch.rand(b, 3, res, res, device=dev) for k in inputs if "images" in k}
    batch["observation.state"] = torch.randn(b, args["state_dim"], device=dev)
    batch["action"] = torch.randn(b, args["chunk_size"], args["action_dim"], device=dev)
    mask = torch.arange(L, device=dev)[None] < torch.randint(L // 3, L, (b,), device=dev)[:, None]
    batch["observation.language.tokens"] = torch.randint(1, 257152, (b, L), device=dev) * mask
    batch["observation.language.attention_mask"] = mask
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2.5e-5, betas=(0.9, 0.95), weight_decay=0.01, fused=dev == "cuda")
    cuda = dev == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args["warmup"] + args["steps"]):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=cuda):
            loss, _ = policy.forward(batch)
        loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); opt.zero_grad(set_to_none=True)
        loss.item()
        if step >= args["warmup"]:
            times.append(time.perf_counter() - t)
        progress(f"lerobot {args['type']}: step {step} {time.perf_counter() - t:.2f} s")
    step_s = statistics.median(times)
    print(json.dumps({"samples_per_s": round(b / step_s, 3), "step_s": round(step_s, 4),
                      "max_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}))
except Exception as exc:  # report why lerobot cannot run here instead of a number
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:600]}))
"""


def run_lerobot(policy_type: str, args: argparse.Namespace) -> dict[str, Any]:
    skip = ("lerobot_python", "json_out")
    payload = json.dumps({"type": policy_type, "benchmarks_dir": str(Path(__file__).resolve().parent),
                          **{k: v for k, v in vars(args).items() if k not in skip}})
    try:  # stderr (its progress lines) passes through
        proc = subprocess.run([args.lerobot_python, "-c", LEROBOT_SCRIPT, payload], stdout=subprocess.PIPE,
                              text=True, timeout=args.part_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.part_timeout:.0f} s (--part-timeout)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    return {"error": f"exit {proc.returncode} (its stderr is above)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--policies", default="pi0,pi05")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--state-dim", type=int, default=14)
    parser.add_argument("--action-dim", type=int, default=14)
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--dtype", default="float32", help="parameter dtype (lerobot's `dtype` field)")
    parser.add_argument("--train-expert-only", action="store_true")
    parser.add_argument("--no-checkpointing", dest="checkpointing", action="store_false")
    parser.add_argument("--lerobot-python", default=None)
    parser.add_argument("--quick", action="store_true", help="CPU, tiny sizes, batch 2, 2 steps")
    parser.add_argument("--json-out", type=Path, default=None, help="rewrite this JSON file after each policy")
    parser.add_argument("--part-timeout", type=float, default=None, help="seconds the lerobot subprocess may run")
    args = parser.parse_args()
    if args.quick:
        args.device, args.batch_size, args.steps, args.warmup, args.chunk_size = "cpu", 2, 2, 1, 10
        args.resolution, args.cameras = 28, 1
    torch.manual_seed(0)
    result: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size, "cameras": args.cameras,
                              "resolution": args.resolution, "chunk_size": args.chunk_size,
                              "grad_checkpointing": args.checkpointing, "dtype": args.dtype,
                              "train_expert_only": args.train_expert_only, "quick": args.quick,
                              "torch": torch.__version__}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    for policy_type in args.policies.split(","):
        entry: dict[str, Any] = {}
        try:
            entry["apprentice"] = run_ours(policy_type, args)
        except torch.OutOfMemoryError as exc:
            entry["apprentice"] = {"error": f"out of memory: {str(exc)[:200]}"}
        if args.device == "cuda":
            torch.cuda.empty_cache()
        result[policy_type] = entry
        progress(f"result {policy_type} {json.dumps(entry)}")
        write_partial(args.json_out, result)
        if args.lerobot_python:
            entry["lerobot"] = run_lerobot(policy_type, args)
            progress(f"result {policy_type} lerobot {json.dumps(entry['lerobot'])}")
            write_partial(args.json_out, result)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
