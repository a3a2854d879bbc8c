"""ReplayBuffer: windows and pad masks like the trainer's dataset samples, FIFO eviction, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from apprentice.rl import TRANSITION_KEYS, ReplayBuffer, ReplayError


def _episode(n_steps: int, offset: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """n_steps transitions + the final observation; values encode (episode offset + frame index)."""
    frames = {
        "observation.state": (offset + np.arange(n_steps + 1, dtype=np.float32))[:, None],
        "action": np.concatenate([offset + np.arange(n_steps, dtype=np.float32), [0.0]])[:, None],
        "next.reward": np.concatenate([np.ones(n_steps, np.float32), [0.0]])[:, None],
    }
    return frames, np.arange(n_steps + 1) < n_steps


def test_windows_pad_past_the_episode_and_at_the_final_observation():
    buffer = ReplayBuffer()
    buffer.add_episode(*_episode(3, 0.0))
    buffer.add_episode(*_episode(4, 100.0))
    assert len(buffer) == 9 and buffer.num_episodes == 2
    deltas = {"observation.state": [0, 1, 2], "action": [0, 1], "next.reward": [0, 1]}
    batch = buffer.sample(256, deltas, np.random.default_rng(0))
    state, state_pad = batch["observation.state"][..., 0], batch["observation.state_is_pad"]
    action, action_pad = batch["action"][..., 0], batch["action_is_pad"]
    # Never a start at a final observation (no action there); windows never cross into another episode.
    assert not action_pad[:, 0].any()
    assert set(np.unique(state[:, 0])) == {0.0, 1.0, 2.0, 100.0, 101.0, 102.0, 103.0}
    assert np.all((state // 100) == (state[:, :1] // 100))
    # The final observation is a real next observation; its action slot is padding.
    last = state[:, 0] == 2.0
    assert not state_pad[last, 1].any() and state_pad[last, 2].all() and action_pad[last, 1].all()
    assert np.all(action[~action_pad] == state[:, :2][~action_pad])


def test_fifo_capacity_drops_whole_oldest_episodes_and_roundtrips(tmp_path):
    buffer = ReplayBuffer(capacity=10)
    for i in range(4):
        buffer.add_episode(*_episode(3, 100.0 * i))
    assert len(buffer) == 8 and buffer.episodes_added == 4  # 16 frames -> the 2 newest episodes
    assert buffer.data["observation.state"][0, 0] == 200.0
    buffer.save(tmp_path / "buffer.safetensors")
    loaded = ReplayBuffer.load(tmp_path / "buffer.safetensors")
    assert loaded.capacity == 10 and loaded.episodes_added == 4 and len(loaded) == 8
    assert all(np.array_equal(loaded.data[k], buffer.data[k]) for k in buffer.data)
    deltas = {"observation.state": [0, 1], "action": [0]}
    a = buffer.sample(8, deltas, np.random.default_rng(1))
    b = loaded.sample(8, deltas, np.random.default_rng(1))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_episodes_and_empty_buffer_are_errors():
    buffer = ReplayBuffer()
    with pytest.raises(ReplayError, match="no transition"):
        buffer.sample(1, {}, np.random.default_rng(0))
    with pytest.raises(ReplayError, match="equal lengths"):
        buffer.add_episode({"action": np.zeros((3, 1)), "observation.state": np.zeros((2, 1))})
    buffer.add_episode(*_episode(2, 0.0))
    with pytest.raises(ReplayError, match="differ"):
        buffer.add_episode({"action": np.zeros((3, 1))})
    with pytest.raises(ReplayError, match="capacity"):
        ReplayBuffer(capacity=0)


def _reference_windows(episodes: list[tuple[dict[str, np.ndarray], np.ndarray]], batch_size: int,
                       deltas: dict[str, list[int]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same sample written the slow, obvious way over a list of episodes (oldest first)."""
    starts = [(e, t) for e, (_, flags) in enumerate(episodes) for t in np.flatnonzero(flags)]
    picks = [starts[i] for i in rng.integers(0, len(starts), size=batch_size)]
    out: dict[str, list] = {}
    for e, t in picks:
        frames, flags = episodes[e]
        for key, store in frames.items():
            if key not in deltas:
                out.setdefault(key, []).append(store[t])
                continue
            idx = [min(max(t + d, 0), len(flags) - 1) for d in deltas[key]]
            pad = [not 0 <= t + d < len(flags) or (key in TRANSITION_KEYS and not flags[i])
                   for d, i in zip(deltas[key], idx, strict=True)]
            out.setdefault(key, []).append(store[idx])
            out.setdefault(f"{key}_is_pad", []).append(pad)
    return {k: np.asarray(v) for k, v in out.items()}


def test_ring_keeps_whole_newest_episodes_in_order_and_samples_like_the_obvious_code(tmp_path):
    rng = np.random.default_rng(3)
    buffer, kept = ReplayBuffer(capacity=25), []
    for i in range(12):  # lengths 3..8 frames: the ring wraps many times, episodes straddle its end
        episode = _episode(int(rng.integers(2, 8)), 100.0 * i)
        buffer.add_episode(*episode)
        kept.append(episode)
        while sum(len(e[1]) for e in kept) > 25:
            kept.pop(0)  # the reference FIFO: whole oldest episodes
        assert len(buffer) == sum(len(e[1]) for e in kept) and buffer.num_episodes == len(kept)
        want = np.concatenate([e[0]["observation.state"] for e in kept])
        assert np.array_equal(buffer.data["observation.state"], want)  # oldest first
        assert np.array_equal(buffer.has_action, np.concatenate([e[1] for e in kept]))
        assert np.all(np.diff(buffer.episode_index) >= 0) and buffer.episode_index[-1] == i
    deltas = {"observation.state": [-1, 0, 1, 2], "action": [0, 1], "next.reward": [0]}
    got = buffer.sample(512, deltas, np.random.default_rng(7))
    want = _reference_windows(kept, 512, deltas, np.random.default_rng(7))
    assert sorted(got) == sorted(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    # Every stored transition comes back: the sampled start frames are exactly the frames with an action.
    starts = buffer.sample(4000, {}, np.random.default_rng(0))["observation.state"][:, 0]
    assert set(starts) == set(buffer.data["observation.state"][buffer.has_action, 0])
    # Save/load of a wrapped ring round-trips (a resumed run samples the same) and keeps growing the same way.
    buffer.save(tmp_path / "ring.safetensors")
    loaded = ReplayBuffer.load(tmp_path / "ring.safetensors")
    a, b = buffer.sample(64, deltas, np.random.default_rng(1)), loaded.sample(64, deltas, np.random.default_rng(1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for buf in (buffer, loaded):
        buf.add_episode(*_episode(6, 5000.0))
    assert loaded.episodes_added == buffer.episodes_added == 13
    assert all(np.array_equal(loaded.data[k], buffer.data[k]) for k in buffer.data)


def test_adding_to_a_full_ring_writes_in_place():
    """The old buffer concatenated (copied every stored frame) per episode; the ring writes only the new one."""
    buffer = ReplayBuffer(capacity=40)
    for i in range(5):
        buffer.add_episode(*_episode(7, 100.0 * i))
    storage = {k: id(v) for k, v in buffer._store.items()}
    for i in range(5, 20):
        buffer.add_episode(*_episode(7, 100.0 * i))
    assert {k: id(v) for k, v in buffer._store.items()} == storage
    assert buffer.data["observation.state"][0, 0] == 1500.0 and len(buffer) == 40


def test_growth_keeps_frames_and_an_episode_longer_than_capacity_is_kept_alone():
    buffer = ReplayBuffer()
    for i in range(30):  # unbounded: grows by doubling, nothing dropped
        buffer.add_episode(*_episode(9, 100.0 * i))
    assert len(buffer) == 300 and buffer.data["observation.state"][299, 0] == 2909.0
    small = ReplayBuffer(capacity=5)
    small.add_episode(*_episode(2, 0.0))
    small.add_episode(*_episode(9, 100.0))
    assert len(small) == 10 and small.num_episodes == 1 and small.data["observation.state"][0, 0] == 100.0
    small.add_episode(*_episode(2, 200.0))
    assert len(small) == 3 and small.data["observation.state"][0, 0] == 200.0
    with pytest.raises(ReplayError, match="shapes differ"):
        small.add_episode({k: np.zeros((2, 3)) for k in small.keys})
    assert len(small) == 3  # the bad episode lost nothing


def test_num_transitions_counts_the_frames_a_sample_can_start_at():
    buffer = ReplayBuffer(capacity=12)
    assert buffer.num_transitions == 0
    for i in range(5):
        buffer.add_episode(*_episode(3, 100.0 * i))  # 3 transitions + the final observation each
        assert buffer.num_transitions == int(buffer.has_action.sum()) == 3 * buffer.num_episodes
