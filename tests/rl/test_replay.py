"""ReplayBuffer: windows and pad masks like the trainer's dataset samples, FIFO eviction, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from apprentice.rl import ReplayBuffer, ReplayError


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
