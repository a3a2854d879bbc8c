"""One torchrun worker of benchmarks/ddp_scaling.py's π0 part: full-size π0 sharded with FSDP2 across the
processes (`apprentice.train.fsdp.shard`, what `--fsdp=true` does in the trainer), then timed training steps.

Why not `-m apprentice.train --fsdp=true`: the trainer builds π0's 3.5 B parameters with the stock CPU init
(minutes, benchmarks/vla_build.py) and tokenizes prompts with PaliGemma's tokenizer (a Hub download). Here the
model is built on the GPU (`fast_build`, same seed on every rank, so the ranks shard one model) and the
prompt is random ids, as benchmarks/pi0_train.py does; the sharding, bf16 autocast, grad clip and fused AdamW
are the trainer's. Each rank trains on its own per-GPU batch. World size 1 runs the same step unsharded
(the reference). Rank 0 prints one JSON line: the global samples/s (the slowest rank's step) and every
rank's peak GPU memory.

    torchrun --nproc_per_node=2 benchmarks/pi0_fsdp.py --batch-size 32 --steps 4 --warmup 1
    torchrun --nproc_per_node=2 benchmarks/pi0_fsdp.py --quick          # CPU, gloo, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import torch
import torch.distributed as dist

from apprentice.train import fsdp
from pi0_train import QUICK_VLM, _batch, build_policy, timed_steps
from vla_build import progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-checkpointing", dest="checkpointing", action="store_false")
    parser.add_argument("--quick", action="store_true", help="CPU (gloo), tiny sizes, batch 2")
    args = parser.parse_args()
    # what pi0_train's build_policy and _batch read: 2 cameras at 224 px, chunk 50, state/action 14
    args.cameras, args.resolution, args.state_dim, args.action_dim, args.chunk_size = 2, 224, 14, 14, 50
    args.train_expert_only, args.dtype = False, "float32"  # FSDP shards one dtype: fp32 weights, bf16 autocast
    if args.quick:
        args.batch_size, args.cameras, args.resolution, args.chunk_size = 2, 1, 28, 10
    world, rank, local = (int(os.environ.get(k, d)) for k, d in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)))
    cuda = torch.cuda.is_available() and not args.quick
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    torch.manual_seed(0)  # the same random init on every rank: they shard one model
    policy, build_s = build_policy("pi0", args, device)
    built_gb = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    if args.checkpointing:
        policy.set_grad_checkpointing(True)
    if world > 1:
        fsdp.shard(policy)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    progress(f"pi0 rank {rank}/{world}: built in {build_s:.1f} s{', sharded' if world > 1 else ''}")
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = policy.make_optimizer(fused=cuda)
    torch.manual_seed(1 + rank)  # each rank its own batch, as a DistributedSampler gives
    vocab = QUICK_VLM.vocab_size if args.quick else 257152
    batch = _batch(args, vocab, policy.config.tokenizer_max_length, str(device))
    times, losses = timed_steps(policy, params, optimizer, batch, device, args, "pi0" if rank == 0 else None)
    mine = {"rank": rank, "step_s": statistics.median(times), "loss": losses[-1],
            "params_local_m": round(sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel()
                                        for p in policy.parameters()) / 1e6, 1)}
    if cuda:
        mine["max_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        mine["built_gb"] = round(built_gb, 2)
    ranks = [mine]
    if world > 1:
        ranks = [None] * world
        dist.all_gather_object(ranks, mine)
    if rank == 0:
        slowest = max(r["step_s"] for r in ranks)
        print(json.dumps({"world_size": world, "fsdp": world > 1, "batch_per_gpu": args.batch_size,
                          "samples_per_s": round(world * args.batch_size / slowest, 3), "step_s": round(slowest, 4),
                          "params_total_m": round(sum(p.numel() for p in policy.parameters()) / 1e6, 1),
                          "grad_checkpointing": args.checkpointing, "build_s": round(build_s, 1),
                          "final_loss": round(sum(r["loss"] for r in ranks) / world, 4), "ranks": ranks}), flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
