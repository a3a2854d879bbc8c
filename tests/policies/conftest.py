"""Policy tests run single-threaded: small CPU models are fastest that way on a shared 2-core box."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def check_fsdp_matches_unsharded(tmp_path):
    """A checker for `--fsdp=true` policies: FSDP2 gathers a unit's weights only around that unit's forward, so
    the units a policy names (`fsdp_units`) must be modules whose forward runs. In a one-process gloo group
    (each shard is the whole tensor) the sharded policy's loss and gradients must equal an unsharded copy's."""
    import copy

    import torch.distributed as dist

    from apprentice.train import fsdp

    def full(t: torch.Tensor) -> torch.Tensor:
        return t.full_tensor() if hasattr(t, "full_tensor") else t

    def check(policy, batch: dict) -> None:
        plain = copy.deepcopy(policy)
        fsdp.shard(policy)
        losses, grads = [], []
        for model in (plain, policy):
            torch.manual_seed(1)  # the same noise and flow time for both
            loss, _ = model(dict(batch))
            loss.backward()
            losses.append(loss.detach())
            grads.append({n: full(p.grad) for n, p in model.named_parameters() if p.grad is not None})
        torch.testing.assert_close(losses[1], losses[0])
        assert grads[1].keys() == grads[0].keys() and len(grads[0]) > 10
        for name, grad in grads[0].items():
            torch.testing.assert_close(grads[1][name], grad, msg=name)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'fsdp_store'}", rank=0, world_size=1)
    yield check
    dist.destroy_process_group()
