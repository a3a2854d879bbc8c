"""SmolVLA fine-tuning with LoRA vs without: trainable parameters, samples/s and peak GPU memory of one
training step (full-size SmolVLM2-500M architecture, random weights, the trainer's TrainStep), for

    expert : lerobot's default, train_expert_only=true (the VLM frozen)
    full   : train_expert_only=false (the VLM's layers train too)
    lora   : --policy.use_peft=true with lerobot's default targets (expert q/v + projections), rank --rank

Each mode runs in its own process (clean peak-memory counters). Prints one JSON object.

    python benchmarks/smolvla_lora.py --device cuda --batch-sizes 4,32
    python benchmarks/smolvla_lora.py --quick            # tiny config on CPU, a smoke run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smolvla_train import QUICK, SMOLVLM2_500M, _memory, _stats, _sync, _timed, make_batch, policy_fields, write_vlm


def worker(args: argparse.Namespace, mode: str, batch: int) -> dict:
    from apprentice.policies import make_config, make_policy
    from apprentice.policies.lora import PeftSettings, apply_lora
    from apprentice.train.step import TrainStep

    torch.manual_seed(0)
    fields = policy_fields(args)
    if mode == "full":
        fields["train_expert_only"] = False
    policy = make_policy(make_config("smolvla", **fields), _stats())
    if mode == "lora":
        policy.config.pretrained_path = "random-init"  # apply_lora adapts a trained policy; here random weights
        apply_lora(policy, PeftSettings(r=args.rank, lora_alpha=args.rank))
    policy = policy.to(args.device).train()
    data = make_batch(args, batch, policy.tokenize.tokenizer, policy.config.chunk_size)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = policy.make_optimizer(fused=args.device == "cuda")
    step = TrainStep(policy, params, optimizer, device=torch.device(args.device), image_keys=["observation.images.top"],
                     grad_clip_norm=10.0, bf16=args.device == "cuda")
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = _timed(lambda: step(lambda: data), _sync(args.device), args.steps, args.warmup)
    return {"samples_per_s": round(batch * args.steps / seconds, 2), "step_ms": round(1000 * seconds / args.steps, 1),
            "trainable_params": sum(p.numel() for p in params),
            "params": sum(p.numel() for p in policy.parameters()), **_memory(args.device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-sizes", default="4,32")
    p.add_argument("--modes", default="expert,full,lora")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--quick", action="store_true", help="tiny config on CPU, batch 2, 2 steps")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--vlm-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.device, args.steps, args.warmup, args.height, args.width = "cpu", 2, 1, 96, 128
        if args.batch_sizes == "4,32":
            args.batch_sizes = "2"
    if args.worker:
        if args.device == "cpu":
            torch.set_num_threads(1)
        print("RESULT " + json.dumps(worker(args, args.worker, args.batch)))
        return
    result: dict = {"benchmark": "smolvla_lora", "device": args.device, "quick": args.quick, "rank": args.rank,
                    "image": [3, args.height, args.width], "steps": args.steps}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        vlm_dir = Path(tmp) / "smolvlm2-500m-random"
        write_vlm(vlm_dir, QUICK if args.quick else SMOLVLM2_500M)
        common = [f"--device={args.device}", f"--steps={args.steps}", f"--warmup={args.warmup}",
                  f"--height={args.height}", f"--width={args.width}", f"--vlm-dir={vlm_dir}",
                  f"--rank={args.rank}", *(["--quick"] if args.quick else [])]
        for mode in args.modes.split(","):
            for batch in [int(b) for b in args.batch_sizes.split(",")]:
                proc = subprocess.run([sys.executable, __file__, f"--worker={mode}", f"--batch={batch}", *common],
                                      capture_output=True, text=True)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                result[f"{mode}_b{batch}"] = json.loads(line[7:]) if line else {
                    "error": proc.stderr.strip().splitlines()[-3:]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
