"""`--fsdp=true` for π0/π0.5: FSDP2 gathers a unit's weights only around that unit's forward, so the units a
policy names (`fsdp_units`) must be modules whose forward runs. A one-process gloo group shards the tiny policy
(world size 1: each shard is the whole tensor), and its loss and gradients must equal the unsharded copy's."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
from pi_helpers import ACTION_DIM, TINY, TINY_VLM, tiny_obs, tiny_policy

from apprentice.train import fsdp


@pytest.fixture
def gloo_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


@pytest.mark.parametrize("policy_type", ["pi0", "pi05"])
def test_sharded_pi_policy_trains_like_the_unsharded(policy_type, gloo_group):
    torch.manual_seed(0)
    policy = tiny_policy(policy_type).train()
    plain = copy.deepcopy(policy)
    assert len(policy.fsdp_units()) == TINY_VLM.vision.num_hidden_layers  # one unit per SigLIP layer
    fsdp.shard(policy)
    batch = {**tiny_obs(bsize=2), "action": torch.randn(2, TINY["chunk_size"], ACTION_DIM)}
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
