"""SmolVLA LoRA adapters across Apprentice and real lerobot 0.6.1, both ways, same inputs and noise:

  ours_in_lerobot   our adapter, loaded as lerobot's make_policy does for use_peft=true (PeftConfig.from_pretrained
                    → SmolVLAPolicy.from_pretrained(base_model_name_or_path) → PeftModel.from_pretrained)
  lerobot_in_ours   lerobot's wrap_with_peft on a lerobot-saved SmolVLA, saved as lerobot-train saves a PEFT
                    checkpoint (peft_model.save_pretrained + config + processors), loaded by our load_policy

Prints the largest |action difference| of each as one JSON object.

  python benchmarks/smolvla_lora_lerobot_compat.py --lerobot-python <py3.12 with lerobot 0.6.1, transformers 5, peft>
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smolvla_lerobot_compat import (
    _inputs,
    _processor_files,
    helpers,
    lerobot_save,
    ours_act,
    ours_save,
    write_inputs,
)


def lerobot_act(adapter: Path, inputs: Path, out: Path) -> None:
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from peft import PeftConfig, PeftModel

    vlm_dir = Path(json.loads((adapter / "config.json").read_text())["vlm_model_name"])
    if not (vlm_dir / "processor_config.json").is_file():
        _processor_files(vlm_dir)
    cfg = PreTrainedConfig.from_pretrained(str(adapter))
    peft_config = PeftConfig.from_pretrained(str(adapter))
    base = SmolVLAPolicy.from_pretrained(peft_config.base_model_name_or_path, config=cfg)
    policy = PeftModel.from_pretrained(base, str(adapter), config=peft_config).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(adapter))
    obs, noise = _inputs(inputs)
    with torch.no_grad():
        actions = post(policy.predict_action_chunk(pre(obs), noise=noise))
    save_file({"actions": actions.contiguous()}, str(out))


def lerobot_adapter(base: Path, out: Path) -> None:
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    policy = SmolVLAPolicy.from_pretrained(str(base))
    policy.config.pretrained_path = str(base)
    peft_model = policy.wrap_with_peft(peft_cli_overrides={"r": 4, "lora_alpha": 8})
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    peft_model.save_pretrained(str(out))
    policy.config.save_pretrained(str(out))
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(base))
    pre.save_pretrained(str(out))
    post.save_pretrained(str(out))


def ours_adapter(base: Path, out: Path) -> None:
    from apprentice.policies import load_policy, save_policy
    from apprentice.policies.lora import PeftSettings, apply_lora

    policy = load_policy(base)
    policy.config.pretrained_path = str(base)
    apply_lora(policy, PeftSettings(r=4, lora_alpha=8))
    torch.manual_seed(2)
    with torch.no_grad():  # a trained-looking adapter (B starts at zero)
        for name, p in policy.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    save_policy(policy, out)


def run(lerobot_python: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vlm_dir = helpers.write_vlm(tmp / "vlm")
        inputs = write_inputs(tmp / "inputs.safetensors")
        ours_save(vlm_dir, tmp / "base")
        ours_adapter(tmp / "base", tmp / "adapter")
        subprocess.run([lerobot_python, __file__, "--lerobot-side", "act", str(tmp / "adapter"), str(inputs),
                        str(tmp / "lr.safetensors")], check=True)
        theirs = load_file(str(tmp / "lr.safetensors"))["actions"]
        ours = ours_act(tmp / "adapter", inputs)
        base = ours_act(tmp / "base", inputs)
        result = {"ours_in_lerobot": {"max_abs_diff": float((ours - theirs).abs().max()),
                                      "action_scale": float(theirs.abs().mean()),
                                      "adapter_effect": float((ours - base).abs().max())}}
        side = [lerobot_python, __file__, "--lerobot-side"]
        subprocess.run([*side, "save", str(vlm_dir), str(tmp / "lr_base")], check=True)
        subprocess.run([*side, "adapter", str(tmp / "lr_base"), str(tmp / "lr_adapter")], check=True)
        subprocess.run([*side, "act", str(tmp / "lr_adapter"), str(inputs), str(tmp / "lr2.safetensors")], check=True)
        theirs = load_file(str(tmp / "lr2.safetensors"))["actions"]
        ours = ours_act(tmp / "lr_adapter", inputs)
        result["lerobot_in_ours"] = {"max_abs_diff": float((ours - theirs).abs().max()),
                                     "action_scale": float(theirs.abs().mean()),
                                     "adapter_effect": float((ours - ours_act(tmp / "lr_base", inputs)).abs().max())}
        return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--lerobot-side":
        cmd, *args = sys.argv[2:]
        {"act": lerobot_act, "adapter": lerobot_adapter, "save": lerobot_save}[cmd](*(Path(a) for a in args))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lerobot-python", required=True)
    args = parser.parse_args()
    print(json.dumps({"benchmark": "smolvla_lora_lerobot_compat", **run(args.lerobot_python)}))


if __name__ == "__main__":
    main()
