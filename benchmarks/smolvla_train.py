"""SmolVLA fine-tuning throughput (samples/s), peak GPU memory, and chunk latency, full size, random weights.

The VLM is SmolVLM2-500M-Video-Instruct's architecture (its config.json values written out below: SigLIP
12 x 768 at 512 px, 64 image tokens per camera after the 4x pixel shuffle, a 960-wide 15/5-head LLaMA text
model cut to smolvla_base's 16 layers) with random weights, and a synthetic word-level tokenizer of its
vocabulary size (49 280, its special tokens at their real ids); the Hub cannot be reached here. Models are built
directly on the device (benchmarks/vla_build.py: seconds instead of minutes of CPU init). The policy is
smolvla_base's config (expert 0.75 x, cross-attention with self-attention every 2nd layer, chunk 50,
train_expert_only, frozen vision).

Modes (each a fresh subprocess, so peak memory is its own):
  ours      apprentice's SmolVLA through the trainer's own step (apprentice.train.step.TrainStep: bf16
            autocast on CUDA with the frozen VLM stored in bf16, fused AdamW, grad clipping, TF32 and
            cuDNN autotuning as the trainer), batches already on the device
  ckpt      ours + grad checkpointing (set_grad_checkpointing)
  graphs    ours + CUDA graphs (--cuda_graphs=true: the step captured after the warm-up, timed steps replay it);
            reports captured / capture_s / capture_error
  graphs_ckpt  graphs + grad checkpointing (--cuda_graphs=true --grad_checkpointing=true)
  memory    CUDA only: where the peak goes (benchmarks/memory_peak.py), one worker per step kind:
            memory_graphs_bN (the warm-up steps, the capture, one replay) and memory_eager_bN (two eager steps),
            the allocator's history recorded from before the build; reports the replayed peak beside
            max_gpu_mem_gb, the live memory at the peak by kind (trainable/frozen params, grads, optimizer state,
            batch buffers, other), the other blocks by allocation site, and the largest blocks
  lerobot   lerobot 0.6.1's SmolVLAPolicy (run by --lerobot-python) with lerobot-train's update step:
            its AdamW preset, clip_grad_norm_, fp32 (its default use_amp=false) and TF32 as lerobot_train
            turns it on; --lerobot-amp adds its autocast. Same batch tensors, same tokens.
  profile   ours: torch.profiler over 3 training steps and 3 chunk predictions, top ops by host and device time
  latency   ours: predict_action_chunk at batch 1 (prefix once + num_steps=10 expert steps), p50/p99 ms,
            fp32 and (CUDA) bf16 autocast; on CUDA each graphed (`fp32_graph`, `bf16_graph`: the default path)
            and eager (`fp32`, `bf16`), each within --latency-budget seconds

Progress goes to stderr (`# built in X s`, `# step i`, `# result KEY {...}`); `--json-out FILE` is rewritten after
each finished mode/batch and `--part-timeout S` bounds each worker, so a run cut short still returns what finished.

Prints one JSON object. Examples:
  python benchmarks/smolvla_train.py --quick                                     # tiny CPU smoke run
  python benchmarks/smolvla_train.py --device cuda --batch-sizes 4,32 --modes ours,ckpt,lerobot,latency \
      --lerobot-python /path/to/py312-lerobot-0.6.1/bin/python
  python benchmarks/smolvla_train.py --device cpu --batch-sizes 1 --modes latency
  timeout 180 python benchmarks/smolvla_train.py --device cuda --batch-sizes 4,32 --modes ours,graphs,latency \
      --part-timeout 45 --json-out smolvla.json
  python benchmarks/smolvla_train.py --device cuda --batch-sizes 4 --modes graphs,graphs_ckpt,memory
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MEMORY_NEEDS_CUDA = ("--modes memory records the CUDA caching allocator's history "
                     "(torch.cuda.memory._record_memory_history): run it with --device cuda on a GPU")
sys.path.insert(0, str(REPO / "src"))
import memory_peak  # noqa: E402  (benchmarks/ is this script's directory)
from vla_build import fast_build, progress, write_partial  # noqa: E402

# HuggingFaceTB/SmolVLM2-500M-Video-Instruct's config.json (the architecture fields). Its top-level pad_token_id
# is 128002 (Idefics3's Llama-3 default, outside the 49 280 vocabulary: transformers warns about it); nothing reads
# it, so it is set to the text model's pad id 2 (<|im_end|>) here.
SMOLVLM2_500M = {
    "model_type": "smolvlm", "scale_factor": 4, "image_token_id": 49190, "vocab_size": 49280, "pad_token_id": 2,
    "tie_word_embeddings": False,
    "text_config": {"model_type": "llama", "hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                    "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64, "rms_norm_eps": 1e-5,
                    "rope_theta": 100000, "max_position_embeddings": 8192, "vocab_size": 49280,
                    "attention_bias": False, "mlp_bias": False, "pad_token_id": 2, "bos_token_id": 1,
                    "eos_token_id": 2},
    "vision_config": {"model_type": "smolvlm_vision", "hidden_size": 768, "intermediate_size": 3072,
                      "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 16, "image_size": 512},
}
MEMORY_MODES = ("memory_graphs", "memory_eager")  # what --modes memory runs
# --quick: the same structure, small enough for a CPU run (<image> at the id special_ids(512) gives it).
QUICK = {**SMOLVLM2_500M, "vocab_size": 512, "image_token_id": 422,
         "text_config": {**SMOLVLM2_500M["text_config"], "hidden_size": 128, "intermediate_size": 256,
                         "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
                         "vocab_size": 512},
         "vision_config": {**SMOLVLM2_500M["vision_config"], "hidden_size": 64, "intermediate_size": 128,
                           "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 128},
         "scale_factor": 2}
NAMED = {"fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
         "image_token": "<image>", "end_of_utterance_token": "<end_of_utterance>"}
BASE_VOCAB = 49152  # SmolVLM2's tokenizer: ordinary tokens below, its 128 added tokens from here to 49 279


def special_ids(vocab_size: int) -> dict[str, int]:
    """The special tokens at SmolVLM2's ids (a smaller --quick vocabulary keeps them at the same distance from
    its end): unk <|endoftext|> 0, bos <|im_start|> 1, pad <|im_end|> 2, eos <end_of_utterance> last."""
    top = vocab_size - (49280 - BASE_VOCAB)
    return {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "<global-img>": top,
            "<fake_token_around_image>": top + 37, "<image>": top + 38, "<end_of_utterance>": vocab_size - 1}
PROMPT = "pick up the red cube and put it in the box on the left side of the table\n"
STATE_DIM = 6


def write_vlm(directory: Path, config: dict, text: str = PROMPT) -> None:
    """config.json + a word-level tokenizer of the config's vocabulary size, knowing the words of `text`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig

    directory.mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in config.items() if k != "model_type"}
    SmolVLMConfig(**cfg).save_pretrained(str(directory))
    special = special_ids(config["vocab_size"])
    words = [*sorted(set(text.split())), "\n"]
    by_id = {i: w for w, i in special.items()} | {3 + i: w for i, w in enumerate(words)}
    vocab = {by_id.get(i, f"w{i}"): i for i in range(config["vocab_size"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<|endoftext|>", bos_token="<|im_start|>",
                                   pad_token="<|im_end|>", eos_token="<end_of_utterance>", extra_special_tokens=NAMED)
    assert fast.convert_tokens_to_ids("<image>") == config["image_token_id"], "synthetic vocab out of step"
    fast.save_pretrained(str(directory))


def write_processor(directory: Path) -> None:
    """The AutoProcessor lerobot's SmolVLMWithExpertModel loads (run by the lerobot interpreter: the video
    processor needs torchvision)."""
    from transformers import AutoTokenizer, SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    SmolVLMProcessor(image_processor=SmolVLMImageProcessor(), tokenizer=AutoTokenizer.from_pretrained(str(directory)),
                     video_processor=SmolVLMVideoProcessor()).save_pretrained(str(directory))


def policy_fields(args: argparse.Namespace) -> dict:
    size = 128 if args.quick else 512
    return {"vlm_model_name": str(args.vlm_dir), "resize_imgs_with_padding": [size, size],
            "num_vlm_layers": 2 if args.quick else 16, "device": args.device,
            "input_features": {"observation.state": {"type": "STATE", "shape": [STATE_DIM]},
                               "observation.images.top": {"type": "VISUAL", "shape": [3, args.height, args.width]}},
            "output_features": {"action": {"type": "ACTION", "shape": [STATE_DIM]}}}


def make_batch(args: argparse.Namespace, batch: int, tokenizer: object, chunk: int = 50) -> dict:
    g = torch.Generator().manual_seed(0)
    tokens = tokenizer([PROMPT] * batch, return_tensors="pt")
    out = {"observation.state": torch.randn(batch, STATE_DIM, generator=g),
           "observation.images.top": torch.rand(batch, 3, args.height, args.width, generator=g),
           "action": torch.randn(batch, chunk, STATE_DIM, generator=g),
           "action_is_pad": torch.zeros(batch, chunk, dtype=torch.bool),
           "observation.language.tokens": tokens["input_ids"],
           "observation.language.attention_mask": tokens["attention_mask"].bool()}
    return {k: v.to(args.device) for k, v in out.items()}


def _stats() -> dict:
    return {"observation.state": {"mean": torch.zeros(STATE_DIM), "std": torch.ones(STATE_DIM)},
            "action": {"mean": torch.zeros(STATE_DIM), "std": torch.ones(STATE_DIM)}}


def _timed(step, sync, steps: int, warmup: int) -> float:
    t_start = time.perf_counter()
    for i in range(warmup):
        step()
        progress(f"warmup step {i} ({time.perf_counter() - t_start:.1f} s)")
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step()
        progress(f"step {i} ({time.perf_counter() - t_start:.1f} s, not synchronised)")
    sync()
    return time.perf_counter() - t0


def _build(args: argparse.Namespace, make):
    """make() under fast_build (parameters created on the device), then .to(device) for what it left on the CPU."""
    t0 = time.perf_counter()
    with fast_build(args.device):
        model = make()
    model = model.to(args.device)
    _sync(args.device)()
    seconds = time.perf_counter() - t0
    progress(f"built in {seconds:.1f} s")
    return model, round(seconds, 1)


def _sync(device: str):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _memory(device: str) -> dict:
    if device != "cuda":
        return {}
    return {"max_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3)}


# ------------------------------------------------------------------------------------------ workers
def _trainer_step(args: argparse.Namespace, batch: int, ckpt: bool, graphs: bool):
    """The trainer's step as `apprentice train` sets it up on CUDA: cuDNN autotuning and TF32 on, bf16 autocast
    with the frozen VLM stored in bf16 (store_frozen_in), fused AdamW; `graphs`: --cuda_graphs=true (the step
    captured after TrainStep's warm-up steps, then replayed); `ckpt`: --grad_checkpointing=true.
    -> (policy, step, batch, trainable params, build seconds)."""
    from apprentice.policies import make_config, make_policy
    from apprentice.train.step import TrainStep

    cuda = args.device == "cuda"
    if cuda:  # as the trainer
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    policy, build_s = _build(args, lambda: make_policy(make_config("smolvla", **policy_fields(args)), _stats()))
    policy.train()
    if ckpt:
        policy.set_grad_checkpointing(True)
    if cuda:
        policy.store_frozen_in(torch.bfloat16)
    data = make_batch(args, batch, policy.tokenize.tokenizer, policy.config.chunk_size)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = policy.make_optimizer(fused=cuda)
    step = TrainStep(policy, params, optimizer, device=torch.device(args.device), image_keys=["observation.images.top"],
                     grad_clip_norm=10.0, bf16=cuda, capture=graphs and cuda, static=graphs)  # CPU: its code path
    return policy, step, data, params, build_s


def _graph_fields(step) -> dict:
    return {"captured": step.captured, "capture_s": round(step.capture_s, 2), "capture_error": step.fallback}


def worker_ours(args: argparse.Namespace, batch: int, ckpt: bool, graphs: bool = False) -> dict:
    """Timed steps of `_trainer_step` (graphed: --warmup covers TrainStep's warm-up steps; timed steps replay)."""
    from apprentice.train.step import WARMUP

    policy, step, data, params, build_s = _trainer_step(args, batch, ckpt, graphs)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    warmup = max(args.warmup, WARMUP + 1) if graphs else args.warmup  # timed steps are replays
    seconds = _timed(lambda: step(lambda: data), _sync(args.device), args.steps, warmup)
    return {"samples_per_s": round(batch * args.steps / seconds, 2), "step_ms": round(1000 * seconds / args.steps, 1),
            "final_loss": round(float(step.loss_sum) / max(1, args.steps + warmup), 4),
            "trainable_params_m": round(sum(p.numel() for p in params) / 1e6, 1),
            "params_m": round(sum(p.numel() for p in policy.parameters()) / 1e6, 1),
            "host_params_m": round(sum(p.numel() for m in policy.model.vlm_with_expert.host_modules.values()
                                       for p in m.parameters()) / 1e6, 1),  # saved, never on the GPU
            "build_s": build_s, **(_graph_fields(step) if graphs else {}), **_memory(args.device)}


def worker_memory(args: argparse.Namespace, batch: int, graphs: bool) -> dict:
    """The live GPU memory at the peak of the trainer's step (memory_peak.py): graphed, over the warm-up steps,
    the capture and one replay; eager, over two steps (the first creates AdamW's state)."""
    from apprentice.train.step import WARMUP

    if args.device != "cuda":
        raise SystemExit(MEMORY_NEEDS_CUDA)
    with memory_peak.history():
        policy, step, data, params, build_s = _trainer_step(args, batch, ckpt=False, graphs=graphs)
        start = memory_peak.trace_length()
        torch.cuda.reset_peak_memory_stats()
        for i in range(WARMUP + 1 if graphs else 2):
            step(lambda: data)
            progress(f"memory step {i}")
        torch.cuda.synchronize()
        state = [t for per in step.optimizer.state.values() for t in per.values() if isinstance(t, torch.Tensor)]
        kinds = {"trainable params": params, "frozen params": [p for p in policy.parameters() if not p.requires_grad],
                 "buffers": list(policy.buffers()), "grads": [p.grad for p in params if p.grad is not None],
                 "optimizer state": state, "batch buffers": list((step.static or {}).values())}
        report = memory_peak.peak_report(start, kinds, REPO)
    return {"build_s": build_s, **(_graph_fields(step) if graphs else {}), **_memory(args.device), **report}


def _top_ops(prof, key: str, n: int = 25) -> list[dict]:
    rows = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)[:n]
    return [{"op": e.key[:80], "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
             "device_ms": round(getattr(e, "self_device_time_total", 0) / 1e3, 2)} for e in rows]


def worker_profile(args: argparse.Namespace, batch: int) -> dict:
    """Where a training step and a chunk prediction spend host and device time (torch.profiler, 3 steps each)."""
    from torch.profiler import ProfilerActivity, profile

    from apprentice.policies import make_config, make_policy
    from apprentice.train.step import TrainStep

    torch.manual_seed(0)
    policy, _ = _build(args, lambda: make_policy(make_config("smolvla", **policy_fields(args)), _stats()))
    policy.train()
    if args.device == "cuda":  # the trainer's eager step (as `ours`); the chunk below is the graphed default
        policy.store_frozen_in(torch.bfloat16)
    data = make_batch(args, batch, policy.tokenize.tokenizer, policy.config.chunk_size)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = policy.make_optimizer(fused=args.device == "cuda")
    step = TrainStep(policy, params, optimizer, device=torch.device(args.device),
                     image_keys=["observation.images.top"], grad_clip_norm=10.0, bf16=args.device == "cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    out: dict = {}
    obs = {key: data[key][:1] for key in ("observation.state", "observation.images.top")} | {"task": PROMPT}
    for name, fn in (("train_step", lambda: step(lambda: data)), ("predict_chunk", None)):
        if fn is None:
            policy.eval()
            fn = lambda: policy.predict_action_chunk(obs)  # noqa: E731
        for _ in range(2):
            fn()
        _sync(args.device)()
        t0 = time.perf_counter()
        with profile(activities=activities) as prof:
            for _ in range(3):
                fn()
            _sync(args.device)()
        events = prof.key_averages()
        kernels = sum(e.count for e in events if getattr(e, "device_type", None) is not None
                      and str(e.device_type).endswith("CUDA"))
        out[name] = {"wall_ms_per_call": round((time.perf_counter() - t0) * 1000 / 3, 1),
                     "device_kernels_per_call": kernels // 3,
                     "top_by_self_cpu": _top_ops(prof, "self_cpu_time_total"),
                     "top_by_device": _top_ops(prof, "self_device_time_total")}
        progress(f"profiled {name}")
    return out


def worker_lerobot(args: argparse.Namespace, batch: int) -> dict:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    if args.device == "cuda":  # as lerobot_train
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    fields = policy_fields(args)
    kinds = {"STATE": FeatureType.STATE, "VISUAL": FeatureType.VISUAL, "ACTION": FeatureType.ACTION}
    feats = {k: {n: PolicyFeature(kinds[f["type"]], tuple(f["shape"])) for n, f in fields[k].items()}
             for k in ("input_features", "output_features")}
    cfg = SmolVLAConfig(**feats, vlm_model_name=fields["vlm_model_name"], device=args.device,
                        resize_imgs_with_padding=tuple(fields["resize_imgs_with_padding"]),
                        num_vlm_layers=fields["num_vlm_layers"], use_amp=args.lerobot_amp)
    torch.manual_seed(0)
    policy, build_s = _build(args, lambda: SmolVLAPolicy(cfg))
    policy.train()
    data = make_batch(args, batch, policy.model.vlm_with_expert.processor.tokenizer, cfg.chunk_size)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = cfg.get_optimizer_preset().build(params)
    amp = torch.autocast(args.device) if args.lerobot_amp else None

    def step() -> None:  # lerobot_train.update_policy without its GradScaler (a no-op unless fp16)
        if amp is not None:
            with torch.autocast(args.device):
                loss, _ = policy.forward(dict(data))
        else:
            loss, _ = policy.forward(dict(data))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optimizer_grad_clip_norm, error_if_nonfinite=False)
        optimizer.step()
        optimizer.zero_grad()

    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = _timed(step, _sync(args.device), args.steps, args.warmup)
    return {"samples_per_s": round(batch * args.steps / seconds, 2), "step_ms": round(1000 * seconds / args.steps, 1),
            "trainable_params_m": round(sum(p.numel() for p in params) / 1e6, 1), "amp": args.lerobot_amp,
            "build_s": build_s, **_memory(args.device)}


def _latency(policy, obs: dict, device: str, precision: str, iters: int, budget_s: float) -> dict:
    """p50/p99 of predict_action_chunk after 3 warm-up calls (the first graphed one captures); stops after
    `budget_s` seconds of timed calls (at least 5)."""
    times: list[float] = []
    t_start = time.perf_counter()
    for i in range(iters + 3):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            _sync(device)()
            t0 = time.perf_counter()
            policy.predict_action_chunk(obs)
            _sync(device)()
        if i == 2:
            t_start = time.perf_counter()
        if i >= 3:
            times.append(1000 * (time.perf_counter() - t0))
            if time.perf_counter() - t_start > budget_s and len(times) >= 5:
                break
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))], 2), "calls": len(times),
            "chunk_size": policy.config.chunk_size, "num_steps": policy.config.num_steps}


def worker_latency(args: argparse.Namespace) -> dict:
    """Batch-1 chunk latency: on CUDA graphed (policy.cuda_graphs, the default) and eager, fp32 (TF32 matmuls)
    and under a caller's bf16 autocast; graphed runs first (fast), eager after, each within its budget."""
    from apprentice.policies import make_config, make_policy

    policy, _ = _build(args, lambda: make_policy(make_config("smolvla", **policy_fields(args)), _stats()))
    policy.eval()
    obs = {"observation.state": torch.randn(1, STATE_DIM, device=args.device),
           "observation.images.top": torch.rand(1, 3, args.height, args.width, device=args.device), "task": PROMPT}
    out = {}
    precisions = ["fp32", "bf16"] if args.device == "cuda" else ["fp32"]
    variants = [(p, True) for p in precisions] if args.device == "cuda" else []
    for precision, graphed in [*variants, *[(p, False) for p in precisions]]:
        policy.cuda_graphs = graphed
        key = f"{precision}_graph" if graphed else precision
        out[key] = _latency(policy, obs, args.device, precision, args.latency_iters, args.latency_budget)
        progress(f"latency {key} {json.dumps(out[key])}")
    if args.device == "cuda":
        out["graphs_captured"] = policy.chunk_graph.captures
        for precision in precisions:
            out[f"graph_speedup_{precision}"] = round(out[precision]["p50_ms"] / out[f"{precision}_graph"]["p50_ms"], 2)
    return {**out, **_memory(args.device)}


# ------------------------------------------------------------------------------------------ driver
def run_worker(cmd: list[str], timeout: float | None) -> dict:
    """Run one worker, echoing its stderr live (its progress lines); its RESULT line, or why there is none."""
    tail: collections.deque[str] = collections.deque(maxlen=3)
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True)

        def echo() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                tail.append(line.rstrip())

        reader = threading.Thread(target=echo, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return {"error": f"timed out after {timeout:.0f} s (--part-timeout)", "stderr_tail": list(tail)}
        reader.join(5)
        out.seek(0)
        line = next((ln for ln in out.read().splitlines() if ln.startswith("RESULT ")), None)
    return json.loads(line[7:]) if line else {"error": f"exit {proc.returncode}", "stderr_tail": list(tail)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-sizes", default="4,32")
    p.add_argument("--modes", default="ours,ckpt,latency")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--latency-iters", type=int, default=50)
    p.add_argument("--latency-budget", type=float, default=8.0, help="seconds of timed calls per latency variant")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--lerobot-python", default=None, help="Python 3.12 with lerobot 0.6.1 + transformers>=5.4,<5.6")
    p.add_argument("--lerobot-amp", action="store_true", help="lerobot with --policy.use_amp=true (autocast)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each CPU worker")
    p.add_argument("--quick", action="store_true", help="tiny config on CPU, batch 2, 2 steps")
    p.add_argument("--json-out", type=Path, default=None, help="rewrite this JSON file after each finished part")
    p.add_argument("--part-timeout", type=float, default=None, help="seconds each worker (mode x batch) may run")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--vlm-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.device, args.steps, args.warmup, args.latency_iters = "cpu", 2, 1, 3
        args.height, args.width = 96, 128
        if args.batch_sizes == "4,32":
            args.batch_sizes = "2"
    if args.worker:
        if args.device == "cpu":  # one thread per side: small CPU ops are not held up by thread sync
            torch.set_num_threads(args.threads)
        fn = {"ours": lambda: worker_ours(args, args.batch, False), "ckpt": lambda: worker_ours(args, args.batch, True),
              "graphs": lambda: worker_ours(args, args.batch, False, graphs=True),
              "graphs_ckpt": lambda: worker_ours(args, args.batch, True, graphs=True),
              "memory_graphs": lambda: worker_memory(args, args.batch, graphs=True),
              "memory_eager": lambda: worker_memory(args, args.batch, graphs=False),
              "lerobot": lambda: worker_lerobot(args, args.batch), "profile": lambda: worker_profile(args, args.batch),
              "latency": lambda: worker_latency(args),
              "processor": lambda: write_processor(args.vlm_dir) or {}}
        print("RESULT " + json.dumps(fn[args.worker]()))
        return
    modes = [m for mode in args.modes.split(",") for m in (MEMORY_MODES if mode == "memory" else (mode,))]
    if args.device != "cuda" and any(m in MEMORY_MODES for m in modes):
        raise SystemExit(MEMORY_NEEDS_CUDA)
    result: dict = {"benchmark": "smolvla_train", "device": args.device, "quick": args.quick,
                    "image": [3, args.height, args.width], "steps": args.steps}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        vlm_dir = Path(tmp) / "smolvlm2-500m-random"
        t0 = time.perf_counter()
        write_vlm(vlm_dir, QUICK if args.quick else SMOLVLM2_500M)
        progress(f"config + tokenizer written in {time.perf_counter() - t0:.1f} s")
        common = [f"--device={args.device}", f"--steps={args.steps}", f"--warmup={args.warmup}",
                  f"--latency-iters={args.latency_iters}", f"--height={args.height}", f"--width={args.width}",
                  f"--vlm-dir={vlm_dir}", f"--threads={args.threads}", *(["--quick"] if args.quick else []),
                  *(["--lerobot-amp"] if args.lerobot_amp else []),
                  f"--latency-budget={args.latency_budget}"]
        if "lerobot" in modes:
            if args.lerobot_python is None:
                raise SystemExit("--modes lerobot needs --lerobot-python PY (Python with lerobot 0.6.1 + transformers)")
            t0 = time.perf_counter()
            made = run_worker([args.lerobot_python, __file__, "--worker=processor", f"--vlm-dir={vlm_dir}"],
                              args.part_timeout)
            progress(f"lerobot processor files written in {time.perf_counter() - t0:.1f} s")
            if "error" in made:
                result["lerobot_processor"] = made
        for mode in modes:
            batches = [1] if mode == "latency" else [int(b) for b in args.batch_sizes.split(",")]
            for batch in batches:
                python = args.lerobot_python if mode == "lerobot" else sys.executable
                key = mode if mode == "latency" else f"{mode}_b{batch}"
                progress(f"{key}: starting")
                result[key] = run_worker([python, __file__, f"--worker={mode}", f"--batch={batch}", *common],
                                         args.part_timeout)
                progress(f"result {key} {json.dumps(result[key])}")
                write_partial(args.json_out, result)
    for batch in args.batch_sizes.split(","):
        theirs = result.get(f"lerobot_b{batch}", {})
        for mode, suffix in (("ours", ""), ("graphs", "_graphs"), ("graphs_ckpt", "_graphs_ckpt")):
            ours = result.get(f"{mode}_b{batch}", {})
            if "samples_per_s" in ours and "samples_per_s" in theirs:
                result[f"speedup{suffix}_b{batch}"] = round(ours["samples_per_s"] / theirs["samples_per_s"], 2)
                if "max_gpu_mem_gb" in ours and "max_gpu_mem_gb" in theirs:
                    result[f"memory_ratio{suffix}_b{batch}"] = round(
                        ours["max_gpu_mem_gb"] / theirs["max_gpu_mem_gb"], 3)
    write_partial(args.json_out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
