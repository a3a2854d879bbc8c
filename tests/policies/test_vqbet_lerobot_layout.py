"""VQ-BeT and LeRobot: parameter names/shapes, optimizer groups, config.json and processor files follow
what lerobot 0.4.4 wrote (tests/policies/lerobot_vqbet); a checkpoint built in that layout loads and acts
exactly as lerobot acted on it (reference_actions.json: same inputs, same seed)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import save_file
from vqbet_helpers import LEROBOT_SPEC, build_lerobot_checkpoint, rollout_inputs, spec_keys

from apprentice.policies import PolicyError, load_policy, make_config, make_policy, save_policy

OURS_ONLY = {"vqbet.action_head.vqvae_model.optimized_steps"}  # the VQ-VAE step count, for exact resume
ZERO_STATS = {
    k: {s: torch.zeros(d) for s in ("min", "max")} for k, d in (("observation.state", (3,)), ("action", (2,)))
}


def _spec_config(**fields: object) -> dict:
    cfg = json.loads((LEROBOT_SPEC / "config.json").read_text())
    cfg.pop("type")
    return {**cfg, **fields}


def test_state_dict_matches_lerobot_keys_shapes_and_dtypes():
    policy = make_policy(make_config("vqbet", **_spec_config()), ZERO_STATS)
    ours = {k: (str(v.dtype).removeprefix("torch."), list(v.shape)) for k, v in policy.state_dict().items()}
    assert set(ours) - set(spec_keys()) == OURS_ONLY
    assert {k: v for k, v in ours.items() if k not in OURS_ONLY} == spec_keys()


def test_sequential_selection_has_lerobots_two_code_heads():
    policy = make_policy(make_config("vqbet", **_spec_config(sequentially_select=True)), ZERO_STATS)
    shapes = {k: list(v.shape) for k, v in policy.state_dict().items() if "cbet_preds" in k and k.endswith("weight")}
    assert shapes == {
        "vqbet.action_head.map_to_cbet_preds_primary_bin.0.weight": [8, 32],
        "vqbet.action_head.map_to_cbet_preds_secondary_bin.0.weight": [8, 32 + 8],  # + the primary code one-hot
        "vqbet.action_head.map_to_cbet_preds_offset.0.weight": [2 * 8 * 3 * 2, 32],
    }
    assert [len(g["params"]) for g in policy.make_optimizer().param_groups] == [81, 12, 12]


def test_optimizer_groups_match_lerobots_get_optim_params():
    policy = make_policy(make_config("vqbet", **_spec_config()), ZERO_STATS)
    sizes = json.loads((LEROBOT_SPEC / "optimizer_group_sizes.json").read_text())
    assert [len(g["params"]) for g in policy.make_optimizer().param_groups] == sizes


def test_saved_files_match_lerobot_layout(tmp_path):
    policy = make_policy(make_config("vqbet", **_spec_config()), ZERO_STATS)
    policy.config.device = "cpu"
    save_policy(policy, tmp_path)
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads((LEROBOT_SPEC / name).read_text()), name
    ours = json.loads((tmp_path / "config.json").read_text())
    spec = json.loads((LEROBOT_SPEC / "config.json").read_text())
    assert list(ours) == list(spec) and ours == spec  # same fields, order and values


def test_lerobot_checkpoint_loads_and_acts_as_lerobot_did(tmp_path):
    weights = build_lerobot_checkpoint(tmp_path)
    policy = load_policy(tmp_path)
    state = policy.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    # A lerobot checkpoint has no step count: a trained (discretized) VQ-VAE counts as fully trained.
    assert policy.discretized and int(state["vqbet.action_head.vqvae_model.optimized_steps"]) == 3
    torch.manual_seed(0)
    actions = [policy.select_action(dict(obs)).tolist() for obs in rollout_inputs()]
    reference = json.loads((LEROBOT_SPEC / "reference_actions.json").read_text())
    # lerobot's actions were recorded on another CPU: float32 kernels may round the last bit differently
    torch.testing.assert_close(torch.tensor(actions), torch.tensor(reference), rtol=1e-5, atol=1e-6)
    torch.manual_seed(1)  # the codes are sampled: another seed, other actions
    policy.reset()
    other = torch.tensor([policy.select_action(dict(obs)).tolist() for obs in rollout_inputs()])
    assert (other - torch.tensor(reference)).abs().max() > 1e-3


def test_mismatched_lerobot_weights_name_the_key(tmp_path):
    weights = build_lerobot_checkpoint(tmp_path)
    weights.pop("vqbet.action_head.map_to_cbet_preds_offset.0.bias")
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(PolicyError, match=re.escape("map_to_cbet_preds_offset.0.bias")):
        load_policy(tmp_path)
