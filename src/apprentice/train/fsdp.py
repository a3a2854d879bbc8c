"""`--fsdp=true`: FSDP2 (`torch.distributed.fsdp.fully_shard`) under torchrun, next to DDP.

Each transformer layer the policy names (`Policy.fsdp_units()`; else the policy's Checkpointable blocks)
becomes one FSDP unit, then the policy itself: parameters, gradients and optimizer state are sharded across
the processes, a unit's full weights exist only while it runs. Checkpoints stay world-size free: the full
(gathered) model and optimizer state dicts are built with torch.distributed.checkpoint's
get_model_state_dict / get_optimizer_state_dict and written by rank 0 in the usual layout, so a
checkpoint from N processes loads in one plain process (`load_policy`) or resumes on any other N.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from apprentice.policies import Policy
from apprentice.policies.checkpointing import Checkpointable
from apprentice.train.config import TrainError


def shard(policy: Policy) -> Policy:
    """Shard `policy` in place (FSDP2 turns it into an FSDPModule); returns it."""
    from torch.distributed.fsdp import fully_shard

    dtypes = {p.dtype for p in policy.parameters()}
    if len(dtypes) > 1:
        raise TrainError(
            f"--fsdp=true: the policy's parameters have several dtypes {sorted(map(str, dtypes))}; FSDP shards one "
            "dtype per unit. Keep the weights float32 (e.g. --policy.dtype=float32) and train in bf16 with "
            "--precision=bf16"
        )
    units = policy.fsdp_units() if hasattr(policy, "fsdp_units") else _default_units(policy)
    for unit in units:
        fully_shard(unit)
    fully_shard(policy)
    return policy


def _default_units(policy: nn.Module) -> list[nn.Module]:
    """Without fsdp_units: the outermost Checkpointable blocks' children layers, else none (root only)."""
    return [m for m in policy.modules() if isinstance(m, Checkpointable) and m is not policy]


@contextlib.contextmanager
def no_gradient_sync(model: Any) -> Iterator[None]:
    """Gradient accumulation: micro-batches before the last keep their gradients unreduced."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def _options(**kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's order: position i is the index a plain optimizer's state_dict gives
    it (groups in order, each group's parameters in order)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_states(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Gathered model state dict and optimizer state dict in the plain-optimizer form (state keyed by
    parameter index, groups listing indices). A collective: every rank calls it; rank 0 gets the tensors."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    model_state = get_model_state_dict(model, options=_options())
    optim = get_optimizer_state_dict(model, optimizer, options=_options())
    if "param_groups" not in optim:  # ranks other than 0 get empty dicts (cpu_offload gathers to rank 0)
        return model_state, optim
    index = {name: i for i, name in enumerate(_param_names(model, optimizer))}
    groups = []
    for group in optim["param_groups"]:
        groups.append({**group, "params": [index[name] for name in group["params"]]})
    state = {index[name]: per for name, per in optim["state"].items()}
    return model_state, {"state": state, "param_groups": groups}


def load_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, plain: dict[str, Any]) -> None:
    """A plain (index-keyed) full optimizer state dict -> this rank's shards."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    names = _param_names(model, optimizer)
    full = {
        "state": {names[int(i)]: per for i, per in plain["state"].items()},
        "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]} for g in plain["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, optim_state_dict=full, options=_options())
