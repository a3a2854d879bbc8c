"""`--fsdp=true` for SmolVLA: FSDP2 gathers a unit's weights only around that unit's forward, so the units the
policy names (`fsdp_units`) must be modules whose forward runs. A one-process gloo group shards the tiny policy
(world size 1: each shard is the whole tensor), and its loss and gradients must equal the unsharded copy's."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
from smolvla_helpers import fields, observation, stats

from apprentice.policies import make_config, make_policy
from apprentice.train import fsdp


@pytest.fixture
def gloo_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def test_sharded_smolvla_trains_like_the_unsharded(vlm_dir, gloo_group):
    torch.manual_seed(0)
    policy = make_policy(make_config("smolvla", **fields(vlm_dir)), stats()).train()
    plain = copy.deepcopy(policy)
    units = policy.fsdp_units()
    assert units and len(units) == len(policy.model.vlm_with_expert.vlm.model.vision_model.encoder.layers)
    fsdp.shard(policy)
    batch = {**observation(2), "action": torch.randn(2, policy.config.chunk_size, 4)}
    losses, grads = [], []
    for model in (plain, policy):
        torch.manual_seed(1)  # the same noise and flow time for both
        loss, _ = model(dict(batch))
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: _full(p.grad) for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[1], losses[0])
    assert grads[1].keys() == grads[0].keys() and len(grads[0]) > 10
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)
