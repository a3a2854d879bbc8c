"""`--fsdp=true` for SmolVLA: one FSDP unit per vision-encoder layer, and the sharded policy trains like the
unsharded one (the checker is tests/policies/conftest.py's); its gathered checkpoint state has every key."""

from __future__ import annotations

import copy

import torch
from smolvla_helpers import fields, observation, stats

from apprentice.policies import make_config, make_policy
from apprentice.train import fsdp


def test_sharded_smolvla_trains_like_the_unsharded(vlm_dir, check_fsdp_matches_unsharded):
    torch.manual_seed(0)
    policy = make_policy(make_config("smolvla", **fields(vlm_dir)), stats()).train()
    units = policy.fsdp_units()
    assert units and len(units) == len(policy.model.vlm_with_expert.vlm.model.vision_model.encoder.layers)
    expected = copy.deepcopy(policy).state_dict()
    batch = {**observation(2), "action": torch.randn(2, policy.config.chunk_size, 4)}
    check_fsdp_matches_unsharded(policy, batch)
    # The host-kept VLM parts (lm_head, …) are outside the shards but in the gathered state, key for key.
    state, _ = fsdp.full_states(policy, policy.make_optimizer())
    assert "model.vlm_with_expert.vlm.lm_head.weight" in state and state.keys() == expected.keys()
    assert all(torch.equal(state[k].cpu(), v) for k, v in expected.items())
