"""Checkpoints in lerobot 0.6.1's layout load: key names/shapes and config.json as lerobot wrote them for
tiny π0/π0.5 (data/ is benchmarks/pi0_lerobot_compat.py --write-spec output), random values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pi_helpers import VOCAB, tiny_obs, tiny_stats, tiny_tokenizer
from safetensors.torch import save_file

from apprentice.policies import load_policy
from apprentice.policies.paligemma import GemmaVariant, VisionVariant, register_variant

DATA = Path(__file__).resolve().parent / "data"
LEROBOT_VOCAB = 257152
# The compat script's sizes (8 heads: lerobot hard-codes them), with a small vocab here.
register_variant("lerobot_tiny_vlm", GemmaVariant(
    width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=8, vocab_size=VOCAB,
    vision=VisionVariant(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         patch_size=8, projection_dim=32)))
register_variant("lerobot_tiny_expert", GemmaVariant(
    width=16, depth=2, mlp_dim=32, num_heads=8, num_kv_heads=1, head_dim=8, vocab_size=VOCAB))
EMBED = "model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
HEAD = "model.paligemma_with_expert.paligemma.lm_head.weight"
NORMALIZER_STEP = {"pi0": 6, "pi05": 3}


def lerobot_keys(policy_type: str) -> dict[str, list[int]]:
    out = {}
    for line in (DATA / f"lerobot_{policy_type}_keys.txt").read_text().splitlines():
        name, _, shape = line.split("\t")
        out[name] = [VOCAB if d == LEROBOT_VOCAB else d for d in json.loads(shape)]
    return out


def write_lerobot_checkpoint(policy_type: str, root: Path, drop: str | None = None) -> dict[str, torch.Tensor]:
    config = json.loads((DATA / f"lerobot_{policy_type}_config.json").read_text())
    assert config["paligemma_variant"] == "gemma_2b" and config["action_expert_variant"] == "gemma_300m"
    config |= {"paligemma_variant": "lerobot_tiny_vlm", "action_expert_variant": "lerobot_tiny_expert"}
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config))
    g = torch.Generator().manual_seed(5)
    weights = {k: torch.randn(shape, generator=g) * 0.1 for k, shape in lerobot_keys(policy_type).items()}
    if drop:
        del weights[drop]
    save_file(weights, str(root / "model.safetensors"))
    step = NORMALIZER_STEP[policy_type]
    state_file = f"policy_preprocessor_step_{step}_normalizer_processor.safetensors"
    steps = [{"registry_name": f"step_{i}", "config": {}} for i in range(step)]
    steps.append({"registry_name": "normalizer_processor", "state_file": state_file,
                  "config": {"eps": 1e-8, "norm_map": config["normalization_mapping"]}})
    (root / "policy_preprocessor.json").write_text(json.dumps({"name": "policy_preprocessor", "steps": steps}))
    save_file({f"{k}.{s}": v for k, d in tiny_stats().items() for s, v in d.items()}, str(root / state_file))
    tiny_tokenizer().save_pretrained(str(root))
    return weights


@pytest.mark.parametrize("policy_type", ["pi0", "pi05"])
def test_lerobot_key_names_and_shapes_are_ours(policy_type, tmp_path):
    write_lerobot_checkpoint(policy_type, tmp_path / "pm")
    policy = load_policy(tmp_path / "pm")
    ours = {k: list(v.shape) for k, v in policy.state_dict().items()}
    assert ours == lerobot_keys(policy_type)


@pytest.mark.parametrize("policy_type", ["pi0", "pi05"])
def test_lerobot_checkpoint_loads_with_its_values_and_acts(policy_type, tmp_path):
    weights = write_lerobot_checkpoint(policy_type, tmp_path / "pm")
    policy = load_policy(tmp_path / "pm")
    state = policy.state_dict()
    for key, value in weights.items():
        if key != HEAD:  # lerobot computes with the embedding; lm_head is never used (see adapt_state_dict)
            torch.testing.assert_close(state[key], value, atol=0, rtol=0)
    torch.testing.assert_close(state[HEAD], weights[EMBED])
    assert torch.isfinite(policy.predict_action_chunk(tiny_obs())).all()


def test_openpi_style_file_with_only_lm_head_fills_the_embedding(tmp_path):
    weights = write_lerobot_checkpoint("pi0", tmp_path / "pm", drop=EMBED)
    policy = load_policy(tmp_path / "pm")
    torch.testing.assert_close(policy.state_dict()[EMBED], weights[HEAD], atol=0, rtol=0)


def test_a_checkpoint_missing_a_layer_is_refused_by_name(tmp_path):
    from apprentice.policies import PolicyError

    write_lerobot_checkpoint("pi0", tmp_path / "pm", drop="model.state_proj.weight")
    with pytest.raises(PolicyError, match=r"missing \['model\.state_proj\.weight'\]"):
        load_policy(tmp_path / "pm")
