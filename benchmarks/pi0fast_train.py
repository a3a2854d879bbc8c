"""π0-FAST training step throughput and peak memory, random weights (no Hub): the full-size PaliGemma-3B
config (SigLIP-So400m + Gemma 2B, 224x224, 50x32 actions ... as lerobot's defaults) on a GPU, or a tiny
config on the CPU with `--quick`. The text tokenizer is a synthetic word-level one with PaliGemma's vocabulary
size; the FAST tokenizer is fitted on smooth random chunks. The model is built directly on the device
(benchmarks/vla_build.py; the stock CPU init of 3 B parameters takes minutes). Progress goes to stderr (`# built
in X s`, `# step i`); `--json-out FILE` gets the result too, rewritten after each part. Prints one JSON object.

`--lerobot-python PY` also times lerobot 0.6.1's PI0FastPolicy at the same sizes, batch, dtype, checkpointing and
optimizer (fused AdamW, bf16 autocast, clip 1.0, median step after the warm-up) in that interpreter, and adds
`"lerobot": {...}` and `"vs_lerobot"` (ours ÷ lerobot's samples/s and peak memory) to the JSON; when lerobot
cannot run there (missing packages, out of memory, `--part-timeout S` passed) its entry is `{"error": ...}`.
Only the training step is timed, on batches already tokenized: lerobot's processor does the tokenizing outside
the policy, and its forward reads `observation.language.tokens/attention_mask` and `action.tokens/token_mask`.
Those get the lengths our side's rows had (the prompt `<bos>Task: …, State: …;\n` and the action sequence
`<bos>Action: <FAST tokens>|<eos>`, reported as `prompt_tokens_mean` / `action_tokens_mean`; both sides pad to
`tokenizer_max_length` and `max_action_tokens`, so the lengths shape the masks and the loss, not the work), with
random ids in the ranges real ones take (FAST ids mapped into the vocabulary as lerobot does, `vocab_size - 1 -
fast_skip_tokens - fast_id`). PI0FastPolicy's constructor also loads the FAST action tokenizer through
`AutoProcessor.from_pretrained(..., trust_remote_code=True)` — remote code on the Hub, unreachable here and on
the GPU machine, and used only to decode generated actions, never in the training step — so inside that
subprocess alone the module's `AutoProcessor` is replaced by a stand-in that returns a placeholder object; the
model, its forward/backward and the text tokenizer (our local synthetic one) are lerobot's own. lerobot's model is
bigger by one matrix: its `lm_head` is not tied to `embed_tokens` after construction (3.45 B parameters against our
2.92 B, the 257152x2048 head trained on its own; `params` on both sides). With `--quick` the
lerobot side gets the same tiny PaliGemma: its variant lookup (`get_gemma_config`) and the PaliGemma constructor
are wrapped in that subprocess to take our tiny text/vision sizes and vocabulary (lerobot hardcodes 257152 and
SigLIP So400m).

    python benchmarks/pi0fast_train.py --device cuda --batch-size 32 [--grad-checkpointing] [--dtype bfloat16] \
        [--lerobot-python /tmp/lrpy --part-timeout 120] [--json-out out.json]
    python benchmarks/pi0fast_train.py --quick [--lerobot-python /path/to/lerobot-venv/bin/python]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
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


def run_ours(a: argparse.Namespace, fields: dict, device: torch.device, rng: np.random.Generator) -> tuple[dict, dict]:
    """Our timed steps: the result, and what the lerobot side needs to mirror the batch (row lengths, vocabularies)."""
    horizon, res = fields["chunk_size"], fields["image_resolution"][0]
    cams = [k for k in fields["input_features"] if "images" in k]
    t0 = time.perf_counter()
    fast = FastTokenizer.fit(list(smooth(400, horizon, a.action_dim, rng)), vocab_size=400 if a.quick else 1024)
    fields["action_tokenizer_name"] = str(fast.save(Path(fields["text_tokenizer_name"]).parent / "fast"))
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
    b = a.batch_size
    batch = {"observation.state": torch.rand(b, a.action_dim, device=device) * 2 - 1,
             "action": torch.from_numpy(smooth(b, horizon, a.action_dim, rng)).float().to(device),
             "task": [TASK] * b}
    for k in cams:
        batch[k] = torch.rand(b, 3, res, res, device=device)
    # The rows' token counts as forward builds them (the batch is the same every step): the lerobot side's masks.
    normed = policy.normalizer.normalize_batch(batch)
    _, prompt_mask = policy.tokens.prompts(batch["task"], normed["observation.state"], device)
    _, action_mask = policy.tokens.actions(normed["action"])
    prompt_lengths, action_lengths = prompt_mask.sum(1).tolist(), action_mask.sum(1).tolist()
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
        "final_loss": float(loss.detach()), "build_s": round(build_s, 1),
        # per row: <bos> Task: …, State: …;\n  and  <bos> Action: <FAST tokens> | <eos>
        "prompt_tokens_mean": round(float(np.mean(prompt_lengths)), 1),
        "action_tokens_mean": round(float(np.mean(action_lengths)), 1),
        "fast_tokens_mean": round(float(np.mean(action_lengths)) - 3 - len(policy.tokens.prefix_ids), 1),
        "torch": torch.__version__,
    }
    mirror = {"prompt_lengths": prompt_lengths, "action_lengths": action_lengths, "fast_vocab_size": fast.vocab_size,
              "text_vocab_size": policy.tokens.vocab_size, "params": params}
    return result, mirror


LEROBOT_SCRIPT = r"""
import json, statistics, sys, time, torch
args = json.loads(sys.argv[1])
sys.path.insert(0, args["benchmarks_dir"])
from vla_build import fast_build, progress
try:
    import lerobot
    import transformers
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.pi0_fast import modeling_pi0_fast as M
    from lerobot.policies.pi0_fast.configuration_pi0_fast import PI0FastConfig

    class FastProcessorStandIn:
        # PI0FastPolicy.__init__ loads the FAST action tokenizer as Hub remote code (unreachable offline); it only
        # decodes generated actions (select_action), never in forward/backward: a placeholder is enough to build.
        def __init__(self, name):
            self.name = name

        @classmethod
        def from_pretrained(cls, name, **kwargs):
            return cls(name)

    M.AutoProcessor = FastProcessorStandIn
    tiny = args["tiny_vlm"]
    if tiny:  # --quick: our tiny PaliGemma (lerobot has only gemma_300m/gemma_2b and fixes vocab and SigLIP sizes)
        text, vision = tiny["text_config"], tiny["vision_config"]
        M.get_gemma_config = lambda variant: M.GemmaConfig(
            text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"], text["num_attention_heads"],
            text["num_key_value_heads"], text["head_dim"])
        real_paligemma = M.PaliGemmaForConditionalGenerationWithPiGemma

        def tiny_paligemma(config):
            config.text_config.vocab_size = text["vocab_size"]
            config.image_token_index = tiny["image_token_index"]
            for k, v in vision.items():
                if k != "model_type":
                    setattr(config.vision_config, k, v)
            return real_paligemma(config)

        M.PaliGemmaForConditionalGenerationWithPiGemma = tiny_paligemma
    res, b, dev = args["resolution"], args["batch_size"], args["device"]
    inputs = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, res, res))
              for i in range(args["cameras"])}
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (args["action_dim"],))
    fields = dict(args["fields"], image_resolution=tuple(args["fields"]["image_resolution"]))
    cfg = PI0FastConfig(input_features=inputs, output_features={"action": PolicyFeature(FeatureType.ACTION,
                        (args["action_dim"],))}, device=dev, **fields)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with fast_build(dev):
        policy = M.PI0FastPolicy(cfg)
    policy = policy.to(dev).train()
    build_s = time.perf_counter() - t0
    progress(f"lerobot pi0_fast: built in {build_s:.1f} s")
    # Tokenized batch: our rows' lengths; prompt ids below the FAST range, action ids = mapped FAST ids.
    tok = policy._paligemma_tokenizer
    V, skip, nfast = tok.vocab_size, cfg.fast_skip_tokens, args["fast_vocab_size"]
    L, A = cfg.tokenizer_max_length, cfg.max_action_tokens
    plen = torch.tensor([args["prompt_lengths"][i % len(args["prompt_lengths"])] for i in range(b)])
    alen = torch.tensor([args["action_lengths"][i % len(args["action_lengths"])] for i in range(b)])
    lang_mask = torch.arange(L)[None] < plen[:, None]
    lang = torch.randint(1, V - skip - nfast, (b, L))
    lang[:, 0] = tok.bos_token_id
    act = V - 1 - skip - torch.randint(0, nfast, (b, A))
    prefix = tok.encode("Action: ", add_special_tokens=False)
    act[:, 0] = tok.bos_token_id
    act[:, 1 : 1 + len(prefix)] = torch.tensor(prefix)
    rows = torch.arange(b)
    act[rows, alen - 2] = tok.convert_tokens_to_ids("|")
    act[rows, alen - 1] = tok.eos_token_id
    act_mask = torch.arange(A)[None] < alen[:, None]
    batch = {k: torch.rand(b, 3, res, res, device=dev) for k in inputs if "images" in k}
    batch["observation.state"] = torch.rand(b, args["action_dim"], device=dev) * 2 - 1
    batch["action"] = torch.randn(b, cfg.chunk_size, args["action_dim"], device=dev)
    batch["observation.language.tokens"] = (lang * lang_mask).to(dev)
    batch["observation.language.attention_mask"] = lang_mask.to(dev)
    batch["action.tokens"] = (act * act_mask).to(dev)
    batch["action.token_mask"] = act_mask.to(dev)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optimizer_lr, betas=cfg.optimizer_betas, eps=cfg.optimizer_eps,
                            weight_decay=cfg.optimizer_weight_decay, fused=dev == "cuda")
    cuda = dev == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args["warmup"] + args["steps"]):
        t = time.perf_counter()
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=cuda):
            loss, _ = policy.forward(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optimizer_grad_clip_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= args["warmup"]:
            times.append(time.perf_counter() - t)
        warm = " (warmup)" * (step < args["warmup"])
        progress(f"lerobot pi0_fast: step {step} {time.perf_counter() - t:.2f} s{warm}")
    step_s = statistics.median(times)
    print(json.dumps({
        "step_s_median": round(step_s, 4), "samples_per_s": round(b / step_s, 2),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "params": sum(p.numel() for p in policy.parameters()), "final_loss": float(loss.detach()),
        "build_s": round(build_s, 1), "prompt_tokens_mean": round(plen.float().mean().item(), 1),
        "action_tokens_mean": round(alen.float().mean().item(), 1),
        "action_tokenizer": "stand-in (Hub remote code; unused by the training step)",
        "lerobot": lerobot.__version__, "transformers": transformers.__version__, "torch": torch.__version__}))
except Exception as exc:  # report why lerobot cannot run here instead of a number
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:600]}))
"""


def run_lerobot(a: argparse.Namespace, fields: dict, mirror: dict) -> dict:
    """lerobot's PI0FastPolicy timed in `--lerobot-python`'s interpreter: its JSON line, or {"error": ...}."""
    keep = ("chunk_size", "n_action_steps", "dtype", "image_resolution", "tokenizer_max_length", "max_action_tokens",
            "fast_skip_tokens", "text_tokenizer_name", "action_tokenizer_name")
    payload = json.dumps({
        "benchmarks_dir": str(Path(__file__).resolve().parent), "device": "cpu" if a.quick else a.device,
        "batch_size": a.batch_size, "steps": a.steps, "warmup": a.warmup, "cameras": a.cameras,
        "action_dim": a.action_dim, "resolution": fields["image_resolution"][0], "tiny_vlm": fields.get("vlm_config"),
        "fields": {**{k: fields[k] for k in keep if k in fields}, "gradient_checkpointing": a.grad_checkpointing},
        **mirror,
    })
    try:  # stderr (its progress lines) passes through
        proc = subprocess.run([a.lerobot_python, "-c", LEROBOT_SCRIPT, payload], stdout=subprocess.PIPE, text=True,
                              timeout=a.part_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {a.part_timeout:.0f} s (--part-timeout)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    return {"error": f"exit {proc.returncode} (its stderr is above)"}


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
    p.add_argument("--lerobot-python", default=None, help="also time lerobot 0.6.1's PI0FastPolicy in this interpreter")
    p.add_argument("--part-timeout", type=float, default=None, help="seconds the lerobot subprocess may run")
    p.add_argument("--json-out", type=Path, default=None, help="also write the result to this JSON file")
    a = p.parse_args()
    device = torch.device("cpu" if a.quick else a.device)
    if a.quick:
        a.batch_size = min(a.batch_size, 4)
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
        result, mirror = run_ours(a, fields, device, rng)
        progress(f"result ours {json.dumps(result)}")
        write_partial(a.json_out, result)
        if a.lerobot_python:
            if device.type == "cuda":  # our model, grads and optimizer state are gone with run_ours' frame
                gc.collect()
                torch.cuda.empty_cache()
            lr = result["lerobot"] = run_lerobot(a, fields, mirror)
            if "samples_per_s" in lr:
                result["vs_lerobot"] = {
                    "samples_per_s": round(result["samples_per_s"] / lr["samples_per_s"], 3),
                    "peak_memory": round(result["peak_memory_gb"] / lr["peak_memory_gb"], 3)
                    if result["peak_memory_gb"] and lr["peak_memory_gb"] else None}
            progress(f"result lerobot {json.dumps(lr)}")
            write_partial(a.json_out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
