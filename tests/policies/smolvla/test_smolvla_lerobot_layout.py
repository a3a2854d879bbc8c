"""A checkpoint in lerobot 0.6.1's exact SmolVLA layout (key names/shapes and JSON files lerobot wrote,
lerobot_smolvla/) loads into ours and acts; ours saves that same layout back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from smolvla_helpers import observation

from apprentice.policies import PolicyError, load_policy, save_policy

SPEC = Path(__file__).parent / "lerobot_smolvla"
NORMALIZER = "policy_preprocessor_step_5_normalizer_processor.safetensors"
UNNORMALIZER = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"


def _lerobot_checkpoint(directory: Path, vlm_dir: Path, drop: str | None = None) -> dict[str, torch.Tensor]:
    directory.mkdir(parents=True)
    for name in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json"):
        (directory / name).write_text((SPEC / name).read_text().replace("<VLM_DIR>", str(vlm_dir)))
    g = torch.Generator().manual_seed(0)
    shapes = json.loads((SPEC / "model_keys.json").read_text())
    weights = {k: torch.randn(s, generator=g) * 0.1 for k, s in shapes.items() if k != drop}
    save_file(weights, str(directory / "model.safetensors"))
    stats = {"observation.state.mean": torch.zeros(4), "observation.state.std": torch.ones(4),
             "action.mean": torch.full((4,), 0.5), "action.std": torch.full((4,), 3.0)}
    save_file(stats, str(directory / NORMALIZER))
    save_file(stats, str(directory / UNNORMALIZER))
    return weights


def test_lerobot_layout_loads_key_for_key_and_acts(tmp_path, vlm_dir):
    weights = _lerobot_checkpoint(tmp_path / "lr", vlm_dir)
    policy = load_policy(tmp_path / "lr")
    ours = policy.state_dict()
    assert set(ours) == set(weights)
    assert all(torch.equal(ours[k], weights[k]) for k in weights)
    assert policy.config.num_vlm_layers == 4 and policy.config.chunk_size == 5
    noise = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    a = policy.predict_action_chunk(observation(), noise=noise)
    assert a.shape == (2, 5, 4) and torch.isfinite(a).all()
    again = load_policy(tmp_path / "lr").predict_action_chunk(observation(), noise=noise)
    assert torch.equal(a, again)


def test_ours_saves_lerobots_layout(tmp_path, vlm_dir):
    _lerobot_checkpoint(tmp_path / "lr", vlm_dir)
    save_policy(load_policy(tmp_path / "lr"), tmp_path / "ours")
    saved = load_file(str(tmp_path / "ours" / "model.safetensors"))
    assert {k: list(v.shape) for k, v in saved.items()} == json.loads((SPEC / "model_keys.json").read_text())
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        theirs = json.loads((SPEC / name).read_text().replace("<VLM_DIR>", str(vlm_dir)))
        mine = json.loads((tmp_path / "ours" / name).read_text())
        assert [s["registry_name"] for s in mine["steps"]] == [s["registry_name"] for s in theirs["steps"]]
        assert [s.get("state_file") for s in mine["steps"]] == [s.get("state_file") for s in theirs["steps"]]
        step = 3 if "pre" in name else 0  # the tokenizer step / the unnormalizer step
        assert mine["steps"][step]["config"] == theirs["steps"][step]["config"]
    config = json.loads((tmp_path / "ours" / "config.json").read_text())
    lerobot = json.loads((SPEC / "config.json").read_text())
    assert set(lerobot) - set(config) == {"pretrained_revision"}  # newer base field; lerobot defaults it
    # The checkpoint carries the VLM's config and tokenizer: it loads with the original VLM dir gone.
    config["vlm_model_name"] = str(tmp_path / "deleted")
    (tmp_path / "ours" / "config.json").write_text(json.dumps(config))
    reloaded = load_policy(tmp_path / "ours")
    assert reloaded.vlm_dir == tmp_path / "ours" / "vlm"


def test_lerobot_layout_with_a_missing_key_is_one_clear_error(tmp_path, vlm_dir):
    key = "model.vlm_with_expert.lm_expert.layers.1.self_attn.k_proj.weight"
    _lerobot_checkpoint(tmp_path / "lr", vlm_dir, drop=key)
    with pytest.raises(PolicyError, match=r"model.safetensors does not match.*missing.*lm_expert.layers.1"):
        load_policy(tmp_path / "lr")
