"""(s, a, r, s', done) batches for off-policy learners out of the episode replay buffer, and RLPD's
symmetric sampling: half of every batch from the offline (demonstration) buffer, half from the online one."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from apprentice.rl.algorithm import NEXT_PREFIX
from apprentice.rl.replay import ReplayBuffer, ReplayError


def sample_transitions(
    buffer: ReplayBuffer, batch_size: int, obs_keys: list[str], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """`batch_size` transitions: each observation key at t and t + 1 (`next.<key>`), the rest at t.

    The step from an episode's last stored frame (a recorded dataset has no final observation) has no
    next frame; its next observation repeats the frame, harmless as its `next.done` is true.
    """
    missing = [k for k in obs_keys if k not in buffer.data]
    if missing:
        raise ReplayError(f"transitions need {missing}; the buffer holds {sorted(buffer.data)}")
    raw = buffer.sample(batch_size, {k: (0, 1) for k in obs_keys}, rng)
    out: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        if key.endswith("_is_pad"):
            continue
        if key in obs_keys:
            out[key], out[NEXT_PREFIX + key] = value[:, 0], value[:, 1]
        else:
            out[key] = value
    for key in ("next.reward", "next.done"):
        if key in out:
            out[key] = out[key].reshape(len(out[key]))
    return out


def mixed_batch(
    online: ReplayBuffer,
    offline: ReplayBuffer | None,
    batch_size: int,
    obs_keys: list[str],
    rng: np.random.Generator,
    offline_fraction: float = 0.5,
) -> dict[str, Tensor]:
    """RLPD sampling: `offline_fraction` of the batch from the demos, the rest from online experience."""
    n_off = round(batch_size * offline_fraction) if offline is not None and len(offline) else 0
    if online.num_transitions == 0:
        n_off = batch_size if n_off else 0
    parts = []
    if batch_size - n_off:
        parts.append(sample_transitions(online, batch_size - n_off, obs_keys, rng))
    if n_off:
        parts.append(sample_transitions(offline, n_off, obs_keys, rng))  # type: ignore[arg-type]
    keys = set.intersection(*(set(p) for p in parts))
    return {
        k: torch.from_numpy(np.concatenate([np.asarray(p[k]).reshape(len(p[k]), *np.shape(parts[0][k])[1:])
                                            for p in parts]))
        for k in sorted(keys)
    }
