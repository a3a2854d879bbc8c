"""LoRA on the π policies: pi0 fine-tuned with `--policy.use_peft=true` through the real trainer trains only
the Gemma expert's q/v adapters and the projection adapters (lerobot's defaults), reloads to the same
actions and merges to the same actions; pi05 gets the same defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pi_helpers import TINY, tiny_obs, tiny_policy, write_tiny_dataset
from safetensors.torch import load_file

from apprentice.policies import load_policy, save_policy
from apprentice.policies.lora import PeftSettings, apply_lora, merge_lora, trainable_parameters
from apprentice.train.cli import main

pytest.importorskip("peft")


def _actions(policy) -> torch.Tensor:
    noise = torch.randn(2, TINY["chunk_size"], TINY["max_action_dim"], generator=torch.Generator().manual_seed(0))
    return policy.predict_action_chunk(tiny_obs(), noise=noise)


def _flags(root: Path, out: Path, pretrained: Path) -> list[str]:
    return [f"--policy.pretrained_path={pretrained}", f"--dataset.root={root}", f"--output_dir={out}",
            "--batch_size=2", "--steps=2", "--save_freq=1", "--log_freq=1", "--policy.device=cpu", "--seed=3",
            "--num_workers=0", "--policy.optimizer_lr=1e-2", "--policy.use_peft=true", "--peft.r=2"]


def _adapted(policy) -> list[str]:
    return sorted({n.rsplit(".lora_", 1)[0] for n in trainable_parameters(policy)})


def test_pi0_lora_through_the_trainer(tmp_path):
    torch.manual_seed(0)
    base_dir = save_policy(tiny_policy("pi0"), tmp_path / "base")
    dataset = write_tiny_dataset(tmp_path / "data")
    assert main(_flags(dataset, tmp_path / "run", base_dir)) == 0
    ckpt = tmp_path / "run" / "checkpoints"
    last = ckpt / "last" / "pretrained_model"
    assert not (last / "model.safetensors").exists()
    first, second = (load_file(str(ckpt / s / "pretrained_model" / "adapter_model.safetensors"))
                     for s in ("000001", "000002"))
    assert sum(not torch.equal(first[k], second[k]) for k in first) > len(first) // 2

    tuned = load_policy(last)
    adapted = _adapted(tuned)
    expert_qv = [n for n in adapted if ".gemma_expert." in n]
    assert len(expert_qv) == 4 and all(n.endswith(("self_attn.q_proj", "self_attn.v_proj")) for n in expert_qv)
    assert sorted(set(adapted) - set(expert_qv)) == sorted(
        f"model.{p}" for p in ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in",
                               "action_time_mlp_out"))
    base = load_file(str(base_dir / "model.safetensors"))
    assert all(torch.equal(v, base[k.replace(".base_layer.", ".")])
               for k, v in tuned.state_dict().items() if "lora_" not in k and k.replace(".base_layer.", ".") in base)
    a = _actions(tuned)
    assert torch.equal(a, _actions(load_policy(last)))
    torch.testing.assert_close(_actions(merge_lora(tuned)), a, rtol=1e-4, atol=1e-5)


def test_pi05_gets_the_defaults(tmp_path):
    pi05 = tiny_policy("pi05")
    pi05.config.pretrained_path = str(tmp_path)
    apply_lora(pi05, PeftSettings(r=2))
    adapted = _adapted(pi05)
    assert sum(".gemma_expert." in n for n in adapted) == 4
    assert {"model.action_in_proj", "model.action_out_proj"} <= set(adapted)
    saved = save_policy(pi05, tmp_path / "pi05")
    assert json.loads((saved / "config.json").read_text())["use_peft"] is True


def test_a_policy_without_defaults_needs_target_modules(tmp_path):
    from apprentice.policies import PolicyError

    pi0 = tiny_policy("pi0")
    pi0.config.pretrained_path = str(tmp_path)
    pi0.default_peft_targets = lambda: None  # as pi0fast (lerobot defines no default for it)
    with pytest.raises(PolicyError, match=r"has no default LoRA target modules; pass --peft\.target_modules="):
        apply_lora(pi0, PeftSettings())
    apply_lora(pi0, PeftSettings(target_modules=["action_out_proj"]))
    assert _adapted(pi0) == ["model.action_out_proj"]
