"""`--fsdp=true` for π0/π0.5: one FSDP unit per SigLIP layer, and the sharded policy trains like the unsharded
one (the checker is tests/policies/conftest.py's)."""

from __future__ import annotations

import pytest
import torch
from pi_helpers import ACTION_DIM, TINY, TINY_VLM, tiny_obs, tiny_policy


@pytest.mark.parametrize("policy_type", ["pi0", "pi05"])
def test_sharded_pi_policy_trains_like_the_unsharded(policy_type, check_fsdp_matches_unsharded):
    torch.manual_seed(0)
    policy = tiny_policy(policy_type).train()
    assert len(policy.fsdp_units()) == TINY_VLM.vision.num_hidden_layers  # one unit per SigLIP layer
    batch = {**tiny_obs(bsize=2), "action": torch.randn(2, TINY["chunk_size"], ACTION_DIM)}
    check_fsdp_matches_unsharded(policy, batch)
