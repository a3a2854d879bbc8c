"""Demonstrations for the offline buffer: a dataset without rewards, or no dataset, is a clear error (the
round trip of a recorded buffer with its intervention flags is in test_hilserl.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apprentice.rl.demos import buffer_from_dataset
from apprentice.rl.replay import ReplayError


def test_dataset_without_rewards_is_a_clear_error(tmp_path: Path) -> None:
    from apprentice.dataset import DatasetWriter

    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": None},
                "action": {"dtype": "float32", "shape": [2], "names": None}}
    with DatasetWriter.create(tmp_path / "d", features=features, fps=10, vcodec="h264") as w:
        for _ in range(3):
            w.add_frame({"observation.state": np.zeros(2, np.float32), "action": np.zeros(2, np.float32)})
        w.save_episode(task="t")
    with pytest.raises(ReplayError, match=r"lacks \['next.reward', 'next.done'\]"):
        buffer_from_dataset(tmp_path / "d", ["observation.state"])
    with pytest.raises(ReplayError, match=r"--dataset\.root"):
        buffer_from_dataset(tmp_path / "missing", ["observation.state"])
