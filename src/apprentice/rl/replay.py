"""A replay buffer of whole episodes, in plain numpy, sampled the way the trainer samples a dataset.

Frames are stored by dataset feature key (`observation.state`, `observation.images.top` as uint8
(C, H, W), `action`, `next.reward`, `next.done`, …). An episode collected online has one frame more
than it has actions: the final observation, so the last transition has its next observation; that
frame's action/reward slots are padding (`has_action` false) and a sample never starts there.

`sample()` returns windows at the offsets a policy asks for (TD-MPC: observations t..t+H, actions and
rewards t..t+H-1) with `<key>_is_pad` masks, the same keys and shapes `train.data.FrameCache` gives,
so online and offline samples concatenate into one batch. FIFO up to `capacity` frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

# Keys that belong to a transition (the step taken from a frame), not to the frame's observation.
TRANSITION_KEYS = ("action", "next.reward", "next.done", "next.success")


class ReplayError(Exception):
    """A replay buffer was given inconsistent episodes or asked for keys it does not hold."""


class ReplayBuffer:
    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ReplayError(f"replay buffer capacity must be >= 1 frame or None, got {capacity}")
        self.capacity = capacity
        self.data: dict[str, np.ndarray] = {}
        self.has_action = np.zeros(0, dtype=bool)
        self.episode_index = np.zeros(0, dtype=np.int64)
        self.episodes_added = 0  # ever added, evicted ones included (seeds of later rollouts derive from it)

    def __len__(self) -> int:
        return len(self.has_action)

    @property
    def num_episodes(self) -> int:
        return len(np.unique(self.episode_index))

    @property
    def keys(self) -> list[str]:
        return list(self.data)

    def add_episode(self, frames: Mapping[str, np.ndarray], has_action: np.ndarray | None = None) -> None:
        """Append one episode: every value has the same first dimension (frames)."""
        lengths = {k: len(v) for k, v in frames.items()}
        n = next(iter(lengths.values()), 0)
        if n == 0 or len(set(lengths.values())) != 1:
            raise ReplayError(f"an episode needs >= 1 frame and equal lengths per key, got {lengths}")
        if self.data and set(frames) != set(self.data):
            raise ReplayError(f"episode keys {sorted(frames)} differ from the buffer's {sorted(self.data)}")
        flags = np.ones(n, dtype=bool) if has_action is None else np.asarray(has_action, dtype=bool)
        if flags.shape != (n,):
            raise ReplayError(f"has_action has shape {flags.shape}, expected ({n},)")
        for key, value in frames.items():
            value = np.asarray(value)
            self.data[key] = value.copy() if key not in self.data else np.concatenate([self.data[key], value])
        self.has_action = np.concatenate([self.has_action, flags])
        self.episode_index = np.concatenate([self.episode_index, np.full(n, self.episodes_added, dtype=np.int64)])
        self.episodes_added += 1
        self._evict()

    def _evict(self) -> None:
        """Drop whole oldest episodes until the buffer fits its capacity (keeping at least the newest)."""
        if self.capacity is None or len(self) <= self.capacity:
            return
        newest = self.episode_index[-1]
        excess = len(self) - self.capacity
        # The first frame of the first episode that starts after `excess` frames have gone.
        starts = np.flatnonzero(np.diff(self.episode_index, prepend=-1))
        keep_from = next((int(s) for s in starts if s >= excess), int(np.flatnonzero(self.episode_index == newest)[0]))
        for key in self.data:
            self.data[key] = self.data[key][keep_from:]
        self.has_action = self.has_action[keep_from:]
        self.episode_index = self.episode_index[keep_from:]

    def sample(
        self, batch_size: int, deltas: Mapping[str, Iterable[int]], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """A batch of `batch_size` windows from uniformly drawn start frames; keys without deltas give one frame."""
        starts = np.flatnonzero(self.has_action)
        if len(starts) == 0:
            raise ReplayError("the replay buffer holds no transition to sample; collect episodes first")
        missing = sorted(set(deltas) - set(self.data))
        if missing:
            raise ReplayError(f"sample asks for {missing}, the buffer holds {sorted(self.data)}")
        rows = starts[rng.integers(0, len(starts), size=batch_size)]
        ep = self.episode_index
        # Episode bounds of each row: episodes are contiguous runs of episode_index.
        first = np.searchsorted(ep, ep[rows], side="left")
        end = np.searchsorted(ep, ep[rows], side="right")
        batch: dict[str, np.ndarray] = {}
        for key, store in self.data.items():
            if key not in deltas:
                batch[key] = store[rows]
                continue
            query = rows[:, None] + np.asarray(list(deltas[key]), dtype=np.int64)[None, :]
            pad = (query < first[:, None]) | (query >= end[:, None])
            idx = np.clip(query, first[:, None], end[:, None] - 1)
            if key in TRANSITION_KEYS:
                pad |= ~self.has_action[idx]
            batch[key] = store[idx]
            batch[f"{key}_is_pad"] = pad
        return batch

    # ------------------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Everything in one safetensors file (the online phase of a resumed run continues with it)."""
        tensors = {f"data/{k}": np.ascontiguousarray(v) for k, v in self.data.items()}
        tensors["has_action"] = self.has_action.astype(np.uint8)
        tensors["episode_index"] = self.episode_index
        meta = {"capacity": str(self.capacity), "episodes_added": str(self.episodes_added)}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> ReplayBuffer:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        capacity = meta.get("capacity", "None")
        buffer = cls(None if capacity == "None" else int(capacity))
        buffer.data = {k[5:]: v for k, v in tensors.items() if k.startswith("data/")}
        buffer.has_action = tensors["has_action"].astype(bool)
        buffer.episode_index = tensors["episode_index"]
        buffer.episodes_added = int(meta.get("episodes_added", buffer.num_episodes))
        return buffer
