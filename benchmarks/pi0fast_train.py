"""π0-FAST training step throughput and peak memory, random weights (no Hub): the full-size PaliGemma-3B
config (SigLIP-So400m + Gemma 2B, 224x224, 50x32 actions ... as lerobot's defaults) on a GPU, or a tiny
config on the CPU with `--quick`. The text tokenizer is a synthetic word-level one with PaliGemma's vocabulary
size; the FAST tokenizer is fitted on smooth random chunks. The model is built directly on the device
(benchmarks/vla_build.py; the stock CPU init of 3 B parameters takes minutes). Progress goes to stderr (`# built
in X s`, `# step i`); `--json-out FILE` gets the result too. Prints one JSON object.

    python benchmarks/pi0fast_train.py --device cuda --batch-size 32 [--grad-checkpointing] [--dtype bfloat16] \
        [--json-out out.json]
    python benchmarks/pi0fast_train.py --quick
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from apprentice.policies import make_policy
from apprentice.policies.pi0fast import FastTokenizer
from vla_build import fast_build, progress, write_partial

TASK = "pick up the red cube and put it in the bowl"


def text_tokenizer(directory: Path, vocab_size: int, text: str = TASK, split_digits: bool = False) -> Path:
    """A word-level PaliGemma-style tokenizer of `vocab_size` ids knowing the words of `text` and the numbers
    -1..255 (π0-FAST's discretised state) as whole words, or with `split_digits` the digits 0-9 one token each,
    as Gemma's own tokenizer splits numbers: a model trained from scratch then reads a bin as its digits, which
    it can generalise across, instead of 257 unrelated ids it must learn one by one from the demos."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    names = ["Task", "State", "Action", *text.split()]
    if split_digits:  # SentencePiece-style: "▁" marks a space, so "12 7" stays apart from "1 27"
        words = [*specials, "▁", ":", ",", ";", "|", "-", "\n", *[f"▁{w}" for w in names], *map(str, range(10))]
        split = [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation(),
                 pre_tokenizers.Digits(individual_digits=True)]
    else:
        words = [*specials, ":", ",", ";", "|", *names, *[str(i) for i in range(-1, 256)]]
        split = [pre_tokenizers.Punctuation(), pre_tokenizers.WhitespaceSplit()]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    vocab.update({f"<u{i}>": i for i in range(len(vocab), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(split)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(str(directory))
    return directory


def smooth(n: int, horizon: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 1, horizon)[None, :, None]
    return (rng.uniform(-1, 1, (n, 1, dim)) + 0.5 * np.sin(2 * np.pi * t * rng.uniform(0.2, 1.5, (n, 1, dim))))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny config on the CPU (a smoke run)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights (lerobot's dtype)")
    p.add_argument("--action-dim", type=int, default=7)
    p.add_argument("--cameras", type=int, default=1)
    p.add_argument("--json-out", type=Path, default=None, help="also write the result to this JSON file")
    a = p.parse_args()
    device = torch.device("cpu" if a.quick else a.device)
    rng = np.random.default_rng(0)
    horizon, res = (10, 32) if a.quick else (50, 224)
    fields: dict = {"chunk_size": horizon, "n_action_steps": horizon, "dtype": a.dtype,
                    "image_resolution": [res, res]}
    vocab = 257152
    if a.quick:
        vocab = 1024
        fields["vlm_config"] = {
            "text_config": {"model_type": "gemma", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": vocab},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 64, "intermediate_size": 128,
                              "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": res, "patch_size": 8,
                              "projection_dim": 64},
            "image_token_index": vocab - 1, "projection_dim": 64}
        fields.update(tokenizer_max_length=48, max_action_tokens=64, fast_skip_tokens=8)
    cams = {f"observation.images.cam{i}": {"type": "VISUAL", "shape": [3, res, res]} for i in range(a.cameras)}
    fields["input_features"] = {"observation.state": {"type": "STATE", "shape": [a.action_dim]}, **cams}
    fields["output_features"] = {"action": {"type": "ACTION", "shape": [a.action_dim]}}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        fields["text_tokenizer_name"] = str(text_tokenizer(Path(tmp) / "text", vocab))
        progress(f"text tokenizer written in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        fast = FastTokenizer.fit(list(smooth(400, horizon, a.action_dim, rng)), vocab_size=400 if a.quick else 1024)
        fields["action_tokenizer_name"] = str(fast.save(Path(tmp) / "fast"))
        progress(f"FAST tokenizer fitted in {time.perf_counter() - t0:.1f} s")
        stats = {k: {"mean": torch.zeros(a.action_dim), "std": torch.ones(a.action_dim)}
                 for k in ("observation.state", "action")}
        torch.manual_seed(0)
        t0 = time.perf_counter()
        with fast_build(device):
            policy = make_policy("pi0fast", stats, **fields)
        policy = policy.to(device).train()
        build_s = time.perf_counter() - t0
        progress(f"built in {build_s:.1f} s")
        if a.grad_checkpointing:
            policy.set_grad_checkpointing(True)
        params = sum(p.numel() for p in policy.parameters())
        opt = policy.make_optimizer(fused=device.type == "cuda")
        b = a.batch_size if not a.quick else min(a.batch_size, 4)
        batch = {"observation.state": torch.rand(b, a.action_dim, device=device) * 2 - 1,
                 "action": torch.from_numpy(smooth(b, horizon, a.action_dim, rng)).float().to(device),
                 "task": [TASK] * b}
        for k in cams:
            batch[k] = torch.rand(b, 3, res, res, device=device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss, _ = policy(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
            progress(f"step {i} {time.perf_counter() - t0:.2f} s{' (warmup)' * (i < a.warmup)}")
        step_s = float(np.median(times))
    result = {
        "benchmark": "pi0fast_train",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "config": "tiny (--quick)" if a.quick else "paligemma-3b (gemma_2b + siglip so400m/14, 224px)",
        "params": params, "weights_dtype": a.dtype, "autocast_bf16": device.type == "cuda", "batch_size": b,
        "cameras": a.cameras, "chunk_size": horizon, "grad_checkpointing": a.grad_checkpointing,
        "step_s_median": round(step_s, 4), "samples_per_s": round(b / step_s, 2),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "final_loss": float(loss.detach()), "build_s": round(build_s, 1), "torch": torch.__version__,
    }
    write_partial(a.json_out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
