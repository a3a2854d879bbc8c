"""SmolVLA checkpoints across Apprentice and real lerobot 0.6.1, both ways, same inputs and noise:

  lerobot_in_ours   lerobot builds a tiny SmolVLA (a tiny SmolVLM2 config + byte-level BPE tokenizer made
                    here, seeded random weights) and saves it with its pre/post-processors; we load that
                    directory and predict a chunk; lerobot predicts from the same directory
  ours_in_lerobot   we build, train 3 steps and save a SmolVLA; lerobot's SmolVLAPolicy.from_pretrained +
                    make_pre_post_processors load it and predict; we predict from the same directory

Each reports the largest |action difference| of predict_action_chunk (batch 2, one task per sample, the
same noise tensor) after each side's own preprocessing (newline + tokenizer, normalisation) and
postprocessing (unnormalisation). lerobot runs in its own interpreter (--lerobot-python, Python 3.12 with
lerobot 0.6.1 + transformers 5); this file is also that side's script (--lerobot-side). Prints one JSON object.

  python benchmarks/smolvla_lerobot_compat.py --lerobot-python /tmp/smolvla-lr/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "policies" / "smolvla"))  # the tiny VLM/tokenizer builders

import smolvla_helpers as helpers  # noqa: E402

TASKS = ["reach the red target", "reach the blue target"]


def write_inputs(path: Path) -> Path:
    """The shared observation and noise both sides act on (seeded), as one safetensors file."""
    g = torch.Generator().manual_seed(0)
    save_file({"state": torch.randn(2, 4, generator=g), "image": torch.rand(2, 3, 24, 32, generator=g),
               "noise": torch.randn(2, helpers.TINY["chunk_size"], helpers.TINY["max_action_dim"], generator=g)},
              str(path))
    return path


def _inputs(path: Path) -> tuple[dict, torch.Tensor]:
    t = load_file(str(path))
    obs = {"observation.state": t["state"], "observation.images.top": t["image"], "task": list(TASKS)}
    return obs, t["noise"]


# ------------------------------------------------------------------------------------------ lerobot side
def _processor_files(vlm_dir: Path) -> None:
    """lerobot's SmolVLMWithExpertModel loads an AutoProcessor from the VLM dir: give it one."""
    from transformers import AutoTokenizer, SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    tok = AutoTokenizer.from_pretrained(str(vlm_dir))
    SmolVLMProcessor(image_processor=SmolVLMImageProcessor(), tokenizer=tok,
                     video_processor=SmolVLMVideoProcessor()).save_pretrained(str(vlm_dir))


def lerobot_save(vlm_dir: Path, out: Path) -> None:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    _processor_files(vlm_dir)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in helpers.TINY.items()}
    cfg = SmolVLAConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (4,)),
                        "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 24, 32))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (4,))},
        vlm_model_name=str(vlm_dir), device="cpu", **fields,
    )
    torch.manual_seed(0)
    policy = SmolVLAPolicy(cfg)
    with torch.no_grad():  # lerobot inits most Linear biases to 0 and norms to 1: perturb everything
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    pre, post = make_pre_post_processors(policy.config, dataset_stats=helpers.stats())
    policy.save_pretrained(str(out))
    pre.save_pretrained(str(out))
    post.save_pretrained(str(out))


def lerobot_act(directory: Path, inputs: Path, out: Path) -> None:
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    vlm_dir = Path(json.loads((directory / "config.json").read_text())["vlm_model_name"])
    if not (vlm_dir / "processor_config.json").is_file():
        _processor_files(vlm_dir)
    policy = SmolVLAPolicy.from_pretrained(str(directory)).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(directory))
    obs, noise = _inputs(inputs)
    with torch.no_grad():
        actions = post(policy.predict_action_chunk(pre(obs), noise=noise))
    save_file({"actions": actions.contiguous()}, str(out))


# ------------------------------------------------------------------------------------------ our side
def ours_act(directory: Path, inputs: Path) -> torch.Tensor:
    from apprentice.policies import load_policy

    policy = load_policy(directory)
    obs, noise = _inputs(inputs)
    return policy.predict_action_chunk(obs, noise=noise)


def ours_save(vlm_dir: Path, out: Path) -> None:
    from apprentice.policies import make_config, make_policy, save_policy

    torch.manual_seed(1)
    policy = make_policy(make_config("smolvla", **helpers.fields(vlm_dir)), helpers.stats())
    optimizer = policy.make_optimizer()
    policy.train()
    for step in range(3):
        batch = {**helpers.observation(batch=4, task=TASKS[step % 2] if step else list(TASKS) * 2, seed=step),
                 "action": torch.randn(4, 5, 4), "action_is_pad": torch.zeros(4, 5, dtype=torch.bool)}
        loss, _ = policy(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    save_policy(policy.eval(), out)


def run(lerobot_python: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vlm_dir = helpers.write_vlm(tmp / "vlm")
        inputs = write_inputs(tmp / "inputs.safetensors")

        def side(*args: str) -> None:
            subprocess.run([lerobot_python, __file__, "--lerobot-side", *args], check=True)

        result: dict = {}
        side("save", str(vlm_dir), str(tmp / "lr_ckpt"))
        side("act", str(tmp / "lr_ckpt"), str(inputs), str(tmp / "lr_actions.safetensors"))
        theirs = load_file(str(tmp / "lr_actions.safetensors"))["actions"]
        ours = ours_act(tmp / "lr_ckpt", inputs)
        result["lerobot_in_ours"] = {"max_abs_diff": float((ours - theirs).abs().max()),
                                     "action_scale": float(theirs.abs().mean())}
        ours_save(vlm_dir, tmp / "our_ckpt")
        side("act", str(tmp / "our_ckpt"), str(inputs), str(tmp / "lr_actions2.safetensors"))
        theirs = load_file(str(tmp / "lr_actions2.safetensors"))["actions"]
        ours = ours_act(tmp / "our_ckpt", inputs)
        result["ours_in_lerobot"] = {"max_abs_diff": float((ours - theirs).abs().max()),
                                     "action_scale": float(theirs.abs().mean())}
        return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--lerobot-side":
        cmd, *args = sys.argv[2:]
        if cmd == "save":
            lerobot_save(Path(args[0]), Path(args[1]))
        else:
            lerobot_act(Path(args[0]), Path(args[1]), Path(args[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lerobot-python", required=True, help="interpreter with lerobot 0.6.1 + transformers 5")
    args = parser.parse_args()
    print(json.dumps({"benchmark": "smolvla_lerobot_compat", **run(args.lerobot_python)}))


if __name__ == "__main__":
    main()
