"""A replay buffer of whole episodes, in plain numpy, sampled the way the trainer samples a dataset.

Frames are stored by dataset feature key (`observation.state`, `observation.images.top` as uint8
(C, H, W), `action`, `next.reward`, `next.done`, …). An episode collected online has one frame more
than it has actions: the final observation, so the last transition has its next observation; that
frame's action/reward slots are padding (`has_action` false) and a sample never starts there.

`sample()` returns windows at the offsets a policy asks for (TD-MPC: observations t..t+H, actions and
rewards t..t+H-1) with `<key>_is_pad` masks, the same keys and shapes `train.data.FrameCache` gives,
so online and offline samples concatenate into one batch. FIFO up to `capacity` frames, whole episodes
at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

# Keys that belong to a transition (the step taken from a frame), not to the frame's observation.
TRANSITION_KEYS = ("action", "next.reward", "next.done", "next.success")


class ReplayError(Exception):
    """A replay buffer was given inconsistent episodes or asked for keys it does not hold."""


class ReplayBuffer:
    """Preallocated ring storage: frame number g (counted since the buffer was made) lives in slot
    g % slots. Adding an episode writes only its own frames (the old concatenating buffer copied all N
    frames per episode); the storage doubles while it is below `capacity` (or always when None), so
    memory stays about what the frames need."""

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ReplayError(f"replay buffer capacity must be >= 1 frame or None, got {capacity}")
        self.capacity = capacity
        self._store: dict[str, np.ndarray] = {}  # key -> (slots, ...) array
        self._has_action = np.zeros(0, dtype=bool)  # per slot
        self._episode = np.zeros(0, dtype=np.int64)  # per slot: its episode's number
        self._bounds = np.zeros((0, 2), dtype=np.int64)  # per slot: its episode's [first, end) frame numbers
        self._lo = self._hi = 0  # live frames are numbers lo..hi-1
        self._episodes: deque[tuple[int, int]] = deque()  # live episodes: (first frame number, length)
        self._starts: np.ndarray | None = None  # frame numbers a sample may start at (cached until an add)
        self.episodes_added = 0  # ever added, evicted ones included (seeds of later rollouts derive from it)

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def keys(self) -> list[str]:
        return list(self._store)

    # Oldest-first views of the live frames (copies only while the ring has wrapped); not the hot path.
    def _ordered(self, array: np.ndarray) -> np.ndarray:
        slots = len(array)
        if slots == 0 or len(self) == 0:
            return array[:0]
        first = self._lo % slots
        if first + len(self) <= slots:
            return array[first:first + len(self)]
        return array[np.arange(self._lo, self._hi) % slots]

    @property
    def data(self) -> dict[str, np.ndarray]:
        return {k: self._ordered(v) for k, v in self._store.items()}

    @property
    def has_action(self) -> np.ndarray:
        return self._ordered(self._has_action)

    @property
    def episode_index(self) -> np.ndarray:
        return self._ordered(self._episode)

    def add_episode(self, frames: Mapping[str, np.ndarray], has_action: np.ndarray | None = None) -> None:
        """Append one episode: every value has the same first dimension (frames)."""
        lengths = {k: len(v) for k, v in frames.items()}
        n = next(iter(lengths.values()), 0)
        if n == 0 or len(set(lengths.values())) != 1:
            raise ReplayError(f"an episode needs >= 1 frame and equal lengths per key, got {lengths}")
        if self._store and set(frames) != set(self._store):
            raise ReplayError(f"episode keys {sorted(frames)} differ from the buffer's {sorted(self._store)}")
        flags = np.ones(n, dtype=bool) if has_action is None else np.asarray(has_action, dtype=bool)
        if flags.shape != (n,):
            raise ReplayError(f"has_action has shape {flags.shape}, expected ({n},)")
        values = {k: np.asarray(v) for k, v in frames.items()}
        wrong = {k: (v.shape[1:], self._store[k].shape[1:]) for k, v in values.items()
                 if k in self._store and v.shape[1:] != self._store[k].shape[1:]}
        if wrong:
            raise ReplayError(f"episode frame shapes differ from the buffer's (given, stored): {wrong}")
        # FIFO: whole oldest episodes go until the new one fits (the newest is kept even if longer).
        while self.capacity is not None and self._episodes and len(self) + n > self.capacity:
            first, length = self._episodes.popleft()
            self._lo = first + length
        self._reserve(len(self) + n, values)
        slot = np.arange(self._hi, self._hi + n) % len(self._has_action)
        for key, value in values.items():
            self._store[key][slot] = value
        self._has_action[slot] = flags
        self._episode[slot] = self.episodes_added
        self._bounds[slot] = (self._hi, self._hi + n)
        self._episodes.append((self._hi, n))
        self._hi += n
        self._starts = None
        self.episodes_added += 1

    def _reserve(self, needed: int, like: Mapping[str, np.ndarray]) -> None:
        """Grow the ring to hold `needed` live frames, keeping every frame at slot g % slots."""
        slots = len(self._has_action)
        if needed <= slots:
            return
        grown = max(needed, 2 * slots, 64)
        if self.capacity is not None:
            grown = max(needed, min(grown, self.capacity))
        live = np.arange(self._lo, self._hi)
        old_slot, new_slot = live % max(slots, 1), live % grown

        def regrow(array: np.ndarray | None, template: np.ndarray) -> np.ndarray:
            out = np.zeros((grown, *template.shape[1:]), dtype=template.dtype)
            if array is not None and len(live):
                out[new_slot] = array[old_slot]
            return out

        self._store = {k: regrow(self._store.get(k), self._store.get(k, v)) for k, v in like.items()}
        self._has_action = regrow(self._has_action, self._has_action)
        self._episode = regrow(self._episode, self._episode)
        self._bounds = regrow(self._bounds, self._bounds)

    def _transition_starts(self) -> np.ndarray:
        """Frame numbers with an action (a sample starts there), oldest first; cached until the next add."""
        if self._starts is None:
            self._starts = self._lo + np.flatnonzero(self.has_action)
        return self._starts

    @property
    def num_transitions(self) -> int:
        return len(self._transition_starts())

    def sample(
        self, batch_size: int, deltas: Mapping[str, Iterable[int]], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """A batch of `batch_size` windows from uniformly drawn start frames; keys without deltas give one frame."""
        starts = self._transition_starts()
        if len(starts) == 0:
            raise ReplayError("the replay buffer holds no transition to sample; collect episodes first")
        missing = sorted(set(deltas) - set(self._store))
        if missing:
            raise ReplayError(f"sample asks for {missing}, the buffer holds {sorted(self._store)}")
        slots = len(self._has_action)
        # Frame numbers, oldest first, so a seeded rng draws the same transitions as it always did.
        rows = starts[rng.integers(0, len(starts), size=batch_size)]
        bounds = self._bounds[rows % slots]
        first, end = bounds[:, 0], bounds[:, 1]
        batch: dict[str, np.ndarray] = {}
        for key, store in self._store.items():
            if key not in deltas:
                batch[key] = store[rows % slots]
                continue
            query = rows[:, None] + np.asarray(list(deltas[key]), dtype=np.int64)[None, :]
            pad = (query < first[:, None]) | (query >= end[:, None])
            idx = np.clip(query, first[:, None], end[:, None] - 1) % slots
            if key in TRANSITION_KEYS:
                pad |= ~self._has_action[idx]
            batch[key] = store[idx]
            batch[f"{key}_is_pad"] = pad
        return batch

    # ------------------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Everything in one safetensors file (the online phase of a resumed run continues with it)."""
        tensors = {f"data/{k}": np.ascontiguousarray(v) for k, v in self.data.items()}
        tensors["has_action"] = self.has_action.astype(np.uint8)
        tensors["episode_index"] = np.ascontiguousarray(self.episode_index)
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
        data = {k[5:]: v for k, v in tensors.items() if k.startswith("data/")}
        episode = tensors["episode_index"].astype(np.int64)
        n = len(episode)
        # Episodes are contiguous runs of episode_index, oldest first; frame numbers restart at 0.
        starts = np.flatnonzero(np.diff(episode, prepend=-1)) if n else np.zeros(0, np.int64)
        ends = np.append(starts[1:], n)
        buffer._store = {k: np.array(v) for k, v in data.items()}
        buffer._has_action = tensors["has_action"].astype(bool)
        buffer._episode = episode
        buffer._bounds = np.repeat(np.stack([starts, ends], axis=1), ends - starts, axis=0)
        buffer._lo, buffer._hi = 0, n
        buffer._episodes = deque((int(s), int(e - s)) for s, e in zip(starts, ends, strict=True))
        buffer.episodes_added = int(meta.get("episodes_added", buffer.num_episodes))
        return buffer
