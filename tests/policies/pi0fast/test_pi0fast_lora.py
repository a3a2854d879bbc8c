"""LoRA on π0-FAST: no default targets (as lerobot), explicit --peft.target_modules on the PaliGemma language
model's q/v; a few steps train only the adapters, and the saved adapter reloads onto the base exactly."""

from __future__ import annotations

import pytest
import torch
from pi0fast_helpers import CHUNK, FEATURES, IMG, STATS, D, tiny_fields

from apprentice.policies import PolicyError, load_policy, make_policy, save_policy
from apprentice.policies.lora import PeftSettings, apply_lora, trainable_parameters

pytest.importorskip("peft")

TARGETS = r".*language_model.*\.(q|v)_proj"


def test_pi0fast_lora_needs_targets_trains_adapters_and_reloads(tmp_path):
    torch.manual_seed(0)
    fields = {**tiny_fields(tmp_path / "tok", CHUNK, D, IMG), **FEATURES}
    base_dir = save_policy(make_policy("pi0fast", STATS, **fields), tmp_path / "base")
    policy = load_policy(base_dir).train()
    policy.config.pretrained_path = str(base_dir)
    with pytest.raises(PolicyError, match=r"pi0fast has no default LoRA target modules"):
        apply_lora(policy, PeftSettings())
    apply_lora(policy, PeftSettings(r=2, target_modules=TARGETS))
    trainable = trainable_parameters(policy)
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    g = torch.Generator().manual_seed(1)
    batch = {"observation.state": torch.rand(2, D, generator=g), "observation.images.top": torch.rand(2, 3, IMG, IMG,
             generator=g), "action": torch.rand(2, CHUNK, D, generator=g) - 0.5, "task": ["go left", "go right"]}
    opt = torch.optim.AdamW(list(trainable.values()), lr=1e-2)
    for _ in range(2):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in policy.named_parameters() if n in frozen)
    assert any(p.abs().sum() > 0 for n, p in trainable.items() if "lora_B" in n)  # B starts at zero
    save_policy(policy, tmp_path / "adapter")
    again = load_policy(tmp_path / "adapter")
    mine = policy.state_dict()
    assert all(torch.equal(v, mine[k]) for k, v in again.state_dict().items())
