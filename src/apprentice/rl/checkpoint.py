"""Learner checkpoints: algorithm state, replay buffer and transport bookkeeping, written atomically.

    <output_dir>/checkpoints/<step>/algorithm.safetensors   every tensor of algorithm.state_dict()
                                   /algorithm.json          the rest of the tree (numbers, lists, names)
                                   /replay_buffer.safetensors
                                   /learner_state.json      step, transitions, per-session durable seq
    <output_dir>/checkpoints/last -> <step>

A step directory is written as ``<step>.tmp`` and renamed when complete, and ``last`` is replaced
atomically: a learner killed while saving resumes from the previous checkpoint. Only safetensors and
JSON are read back — never pickle (an optimizer's state dict is a tree of tensors, ints and tuples;
`flatten_tree` keeps int keys and tuples so `load_state_dict` gets exactly what it saved).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from apprentice.rl.replay import ReplayBuffer

LAST = "last"


class LearnerError(RuntimeError):
    """A learner problem: bad config, unknown algorithm type, a checkpoint missing or incomplete."""


def flatten_tree(tree: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """A JSON-able skeleton of ``tree``; its tensors go into ``tensors`` under their tree path."""
    if isinstance(tree, torch.Tensor | np.ndarray):
        tensors[path] = torch.as_tensor(tree).detach().to("cpu").contiguous()
        return {"__tensor__": path, "numpy": isinstance(tree, np.ndarray)}
    if isinstance(tree, dict):
        if all(isinstance(k, str) for k in tree):
            return {"__dict__": {k: flatten_tree(v, tensors, f"{path}/{k}") for k, v in tree.items()}}
        # int (or mixed) keys, as torch optimizers use: JSON objects would turn them into strings
        return {"__items__": [[k, flatten_tree(v, tensors, f"{path}/{k}")] for k, v in tree.items()]}
    if isinstance(tree, list | tuple):
        items = [flatten_tree(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]
        return {"__tuple__": items} if isinstance(tree, tuple) else items
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    raise LearnerError(f"state_dict entry {path or '/'} is a {type(tree).__name__}; only tensors, arrays, "
                          "numbers, strings, lists, tuples and dicts can be checkpointed")


def unflatten_tree(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, list):
        return [unflatten_tree(v, tensors) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__tensor__" in skeleton:
        tensor = tensors[skeleton["__tensor__"]]
        return tensor.numpy() if skeleton.get("numpy") else tensor
    if "__dict__" in skeleton:
        return {k: unflatten_tree(v, tensors) for k, v in skeleton["__dict__"].items()}
    if "__items__" in skeleton:
        return {k: unflatten_tree(v, tensors) for k, v in skeleton["__items__"]}
    if "__tuple__" in skeleton:
        return tuple(unflatten_tree(v, tensors) for v in skeleton["__tuple__"])
    raise LearnerError(f"unknown checkpoint tree node {sorted(skeleton)}")


def save_checkpoint(output_dir: str | Path, step: int, algorithm_state: dict, replay: ReplayBuffer,
                    learner_state: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` and point ``last`` at it; returns its directory."""
    root = Path(output_dir) / "checkpoints"
    final = root / f"{step:09d}"
    for k in itertools.count(1):  # a second save at the same step (the final one) gets its own directory
        if not final.exists():
            break
        final = root / f"{step:09d}.{k}"
    tmp = root / f"{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten_tree(algorithm_state, tensors)
    save_file(tensors, str(tmp / "algorithm.safetensors"))
    (tmp / "algorithm.json").write_text(json.dumps(skeleton))
    replay.save(tmp / "replay_buffer.safetensors")
    (tmp / "learner_state.json").write_text(json.dumps({**learner_state, "step": step}, indent=1))
    os.replace(tmp, final)
    link = root / f"{LAST}.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(final.name)
    previous = latest_checkpoint(output_dir)
    os.replace(link, root / LAST)
    if previous is not None and previous.name.startswith(f"{step:09d}") and previous != final:
        shutil.rmtree(previous, ignore_errors=True)  # superseded at the same step
    return final


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    last = Path(output_dir) / "checkpoints" / LAST
    return last.resolve() if last.exists() else None


def load_checkpoint(directory: str | Path) -> tuple[dict, ReplayBuffer, dict[str, Any]]:
    """(algorithm state_dict, replay buffer, learner state) of one checkpoint directory."""
    directory = Path(directory)
    needed = ("algorithm.safetensors", "algorithm.json", "replay_buffer.safetensors", "learner_state.json")
    missing = [name for name in needed if not (directory / name).exists()]
    if missing:
        raise LearnerError(f"learner checkpoint {directory} lacks {', '.join(missing)}; "
                              "resume from another one or start a new --output_dir")
    state = unflatten_tree(json.loads((directory / "algorithm.json").read_text()),
                           load_file(str(directory / "algorithm.safetensors")))
    replay = ReplayBuffer.load(directory / "replay_buffer.safetensors")
    return state, replay, json.loads((directory / "learner_state.json").read_text())
