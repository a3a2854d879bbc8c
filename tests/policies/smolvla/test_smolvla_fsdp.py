"""`--fsdp=true` for SmolVLA: one FSDP unit per vision-encoder layer, and the sharded policy trains like the
unsharded one (the checker is tests/policies/conftest.py's)."""

from __future__ import annotations

import torch
from smolvla_helpers import fields, observation, stats

from apprentice.policies import make_config, make_policy


def test_sharded_smolvla_trains_like_the_unsharded(vlm_dir, check_fsdp_matches_unsharded):
    torch.manual_seed(0)
    policy = make_policy(make_config("smolvla", **fields(vlm_dir)), stats()).train()
    units = policy.fsdp_units()
    assert units and len(units) == len(policy.model.vlm_with_expert.vlm.model.vision_model.encoder.layers)
    batch = {**observation(2), "action": torch.randn(2, policy.config.chunk_size, 4)}
    check_fsdp_matches_unsharded(policy, batch)
