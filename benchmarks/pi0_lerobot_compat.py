"""π0 / π0.5 checkpoints both ways between lerobot 0.6.1 and Apprentice, on the CPU, at tiny sizes.

lerobot runs in its own interpreter (`--lerobot-python`: lerobot 0.6.1 + its pinned stock transformers
5.5); its Gemma sizes are shrunk by patching `get_gemma_config` and the SigLIP config in that process
(8 heads: lerobot's joint attention hard-codes 8 heads), and Apprentice registers the same sizes under
the same variant names. For each policy type:

  lerobot -> ours   lerobot builds a seeded random policy, saves it with `save_pretrained` and its
                    processors; we `load_policy` that directory and act on the same observation and
                    the same initial noise; the actions are compared.
  ours -> lerobot   we save a seeded random policy with `save_policy`; lerobot loads it with
                    `PI0Policy.from_pretrained` (strict) and its processors with
                    `PolicyProcessorPipeline.from_pretrained`, and acts with the same noise.

The tokenizer is a tiny word-level one built here (no Hub), given to both sides. With `--write-spec DIR`
the lerobot side's state-dict key names/shapes and config.json are written to DIR (the test data of
tests/policies/pi0/test_pi_lerobot_layout.py).

Prints one JSON object:
  python benchmarks/pi0_lerobot_compat.py --lerobot-python /tmp/pi0-lr/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from apprentice.policies import load_policy, make_policy, save_policy
from apprentice.policies.paligemma import GemmaVariant, VisionVariant, register_variant

VISION = VisionVariant(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, patch_size=8,
                       projection_dim=32)
VLM = GemmaVariant(width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=8, vision=VISION)
EXPERT = GemmaVariant(width=16, depth=2, mlp_dim=32, num_heads=8, num_kv_heads=1, head_dim=8)
FIELDS: dict[str, Any] = {"chunk_size": 4, "n_action_steps": 4, "max_state_dim": 8, "max_action_dim": 6,
                          "num_inference_steps": 3, "image_resolution": [32, 32], "tokenizer_max_length": 24}
STATE_DIM, ACTION_DIM = 3, 2

LEROBOT_SIDE = r"""
import json, sys, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
args = json.loads(sys.argv[1])
kind, work = args["type"], Path(args["work"])
import lerobot.policies.pi0.modeling_pi0 as m0
import lerobot.policies.pi05.modeling_pi05 as m5
mod = m0 if kind == "pi0" else m5
sizes = {"gemma_2b": m0.GemmaConfig(32, 2, 64, 8, 1, 8), "gemma_300m": m0.GemmaConfig(16, 2, 32, 8, 1, 8)}
mod.get_gemma_config = lambda v: sizes[v]
orig = mod.PaliGemmaForConditionalGenerationWithPiGemma
def tiny_paligemma(config):
    v = config.vision_config
    v.hidden_size, v.intermediate_size, v.num_hidden_layers, v.num_attention_heads = 32, 64, 1, 2
    v.patch_size, v.projection_dim = 8, 32
    return orig(config=config)
mod.PaliGemmaForConditionalGenerationWithPiGemma = tiny_paligemma
from transformers import AutoTokenizer
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.processor import PolicyProcessorPipeline
tok = AutoTokenizer.from_pretrained(str(work / "tok"))
_hub = AutoTokenizer.from_pretrained  # no Hub here: the PaliGemma tokenizer name resolves to the tiny one
PALIGEMMA = "google/paligemma-3b-pt-224"
AutoTokenizer.from_pretrained = lambda name, *a, **k: tok if name == PALIGEMMA else _hub(name, *a, **k)
if kind == "pi0":
    from lerobot.policies.pi0.configuration_pi0 import PI0Config as C
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy as P
    from lerobot.policies.pi0.processor_pi0 import make_pi0_pre_post_processors as make_proc
else:
    from lerobot.policies.pi05.configuration_pi05 import PI05Config as C
    from lerobot.policies.pi05.modeling_pi05 import PI05Policy as P
    from lerobot.policies.pi05.processor_pi05 import make_pi05_pre_post_processors as make_proc
obs = load_file(str(work / "obs.safetensors"))
if args["mode"] == "make":
    torch.manual_seed(args["seed"])
    cfg = C(input_features={"observation.state": PolicyFeature(FeatureType.STATE, (3,)),
                            "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 24, 32))},
            output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))}, device="cpu",
            push_to_hub=False, **args["fields"])
    policy = P(cfg)
    for n, p in policy.named_parameters():  # adaRMS modulation starts at zero: give it values to compare
        if "dense" in n:
            torch.nn.init.normal_(p, std=0.2)
    stats = {}
    for k, v in load_file(str(work / "stats.safetensors")).items():
        feat, stat = k.rsplit(".", 1)
        stats.setdefault(feat, {})[stat] = v
    out = work / "lerobot_model"
    policy.save_pretrained(out)
    pre, post = make_proc(cfg, stats)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    if args.get("spec"):
        spec = Path(args["spec"])
        spec.mkdir(parents=True, exist_ok=True)
        sd = load_file(str(out / "model.safetensors"))
        (spec / f"lerobot_{kind}_keys.txt").write_text(
            "".join(f"{k}\t{str(v.dtype).replace('torch.', '')}\t{json.dumps(list(v.shape))}\n" for k, v in sd.items()))
        (spec / f"lerobot_{kind}_config.json").write_text((out / "config.json").read_text())
    src = out
else:
    src = work / "ours_model"
    policy = P.from_pretrained(str(src), strict=True)
over = {"tokenizer_processor": {"tokenizer": tok}, "device_processor": {"device": "cpu"}}
pre = PolicyProcessorPipeline.from_pretrained(str(src), config_filename="policy_preprocessor.json", overrides=over)
from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
post = PolicyProcessorPipeline.from_pretrained(str(src), config_filename="policy_postprocessor.json",
                                               to_transition=policy_action_to_transition,
                                               to_output=transition_to_policy_action)
policy.eval()
batch = pre({"observation.state": obs["state"], "observation.images.top": obs["image"],
             "task": ["pick the cube", "go left"]})
images, img_masks = policy._preprocess_images(batch)
tokens, masks = batch["observation.language.tokens"], batch["observation.language.attention_mask"]
with torch.no_grad():
    if kind == "pi0":
        state = policy.prepare_state(batch)
        x = policy.model.sample_actions(images, img_masks, tokens, masks, state, noise=obs["noise"])
    else:
        x = policy.model.sample_actions(images, img_masks, tokens, masks, noise=obs["noise"])
actions = post(x[:, :, :2])
save_file({"actions": actions.contiguous(), "tokens": tokens.contiguous()},
          str(work / f"lerobot_{args['mode']}.safetensors"))
print(json.dumps({"ok": True}))
"""


def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<bos>", "<unk>", "\n", "Task", "State", "Action", ":", ",", ";", "pick", "the",
             "cube", "go", "left"] + [str(i) for i in range(300)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", "isolated"), pre_tokenizers.Split(" ", "removed"), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def _stats() -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    out = {}
    for key, dim in (("observation.state", STATE_DIM), ("action", ACTION_DIM)):
        mean = torch.randn(dim, generator=g)
        out[key] = {"mean": mean, "std": torch.rand(dim, generator=g) + 0.5, "min": mean - 2, "max": mean + 2,
                    "q01": mean - 1.5, "q99": mean + 1.5, "q10": mean - 1, "q90": mean + 1}
    return out


def _lerobot(python: str, payload: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([python, "-c", LEROBOT_SIDE, json.dumps(payload)], capture_output=True, text=True,
                          timeout=1200)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-1500:]}
    return {"ok": True}


def _ours_act(directory: Path, obs: dict[str, torch.Tensor]) -> torch.Tensor:
    policy = load_policy(directory)
    batch = {"observation.state": obs["state"], "observation.images.top": obs["image"],
             "task": ["pick the cube", "go left"]}
    return policy.predict_action_chunk(batch, noise=obs["noise"])


def check(policy_type: str, python: str, work: Path, spec: str | None) -> dict[str, Any]:
    obs = load_file(str(work / "obs.safetensors"))
    result: dict[str, Any] = {}
    made = _lerobot(python, {"type": policy_type, "mode": "make", "work": str(work), "seed": 0,
                             "fields": FIELDS, "spec": spec})
    if "error" in made:
        return {"lerobot_to_ours": made}
    expected = load_file(str(work / "lerobot_make.safetensors"))["actions"]
    os.environ["APPRENTICE_PALIGEMMA_TOKENIZER"] = str(work / "tok")  # lerobot's dir names the Hub tokenizer
    ours = _ours_act(work / "lerobot_model", obs)
    result["lerobot_to_ours"] = {"max_abs_diff": float((ours - expected).abs().max()),
                                 "action_scale": float(expected.abs().mean())}
    torch.manual_seed(1)
    stats = _stats()
    feats = {"input_features": {"observation.state": {"type": "STATE", "shape": [STATE_DIM]},
                                "observation.images.top": {"type": "VISUAL", "shape": [3, 24, 32]}},
             "output_features": {"action": {"type": "ACTION", "shape": [ACTION_DIM]}}}
    policy = make_policy(policy_type, stats, **feats, **FIELDS)
    for name, p in policy.named_parameters():
        if ".dense." in name:
            torch.nn.init.normal_(p, std=0.2)
    policy.prompt.set(tiny_tokenizer())
    save_policy(policy, work / "ours_model")
    batch = {"observation.state": obs["state"], "observation.images.top": obs["image"],
             "task": ["pick the cube", "go left"]}
    ours = policy.eval().predict_action_chunk(batch, noise=obs["noise"])
    loaded = _lerobot(python, {"type": policy_type, "mode": "load", "work": str(work)})
    if "error" in loaded:
        result["ours_to_lerobot"] = loaded
    else:
        theirs = load_file(str(work / "lerobot_load.safetensors"))["actions"]
        result["ours_to_lerobot"] = {"max_abs_diff": float((ours - theirs).abs().max()),
                                     "action_scale": float(theirs.abs().mean())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lerobot-python", required=True)
    parser.add_argument("--policies", default="pi0,pi05")
    parser.add_argument("--write-spec", default=None, help="dir for lerobot's key names/shapes and config.json")
    args = parser.parse_args()
    register_variant("gemma_2b", VLM)  # this process only: the names lerobot's config.json carries
    register_variant("gemma_300m", EXPERT)
    out: dict[str, Any] = {"sizes": {"vlm": asdict(VLM), "expert": {k: v for k, v in asdict(EXPERT).items()
                                                                     if k != "vision"}}}
    for policy_type in args.policies.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            tiny_tokenizer().save_pretrained(str(work / "tok"))
            g = torch.Generator().manual_seed(3)
            save_file({"state": torch.randn(2, STATE_DIM, generator=g), "image": torch.rand(2, 3, 24, 32, generator=g),
                       "noise": torch.randn(2, FIELDS["chunk_size"], FIELDS["max_action_dim"], generator=g)},
                      str(work / "obs.safetensors"))
            flat = {f"{k}.{s}": v for k, d in _stats().items() for s, v in d.items()}
            save_file(flat, str(work / "stats.safetensors"))
            out[policy_type] = check(policy_type, args.lerobot_python, work, args.write_spec)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
