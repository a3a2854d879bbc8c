"""Dataset test helpers: deterministic frames and small real datasets (parquet, AV1/H.264 mp4) by our writer.

A uniquely named module (not conftest) so test modules of several folders can import their helpers in one run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apprentice.dataset import DatasetWriter

REF_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lerobot_ref"
if not REF_ROOT.exists():  # the repo lives at /work/main, the shared data at /work/shared
    REF_ROOT = Path("/work/shared/data/lerobot_ref")

HEIGHT, WIDTH = 32, 48
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "observation.images.top": {"dtype": "video", "shape": [HEIGHT, WIDTH, 3],
                               "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "observation.gripper_open": {"dtype": "bool", "shape": [1], "names": None},
    "language.note": {"dtype": "string", "shape": [1], "names": None},
}


def frame_value(episode: int, i: int) -> dict:
    """Deterministic frame content, so tests can recompute what any sample must contain."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0] = (i * 9) % 250
    image[..., 1] = (episode * 60) % 250
    image[: HEIGHT // 2, : WIDTH // 2, 2] = 200
    state = np.arange(6, dtype=np.float32) + 100 * episode + i
    return {
        "observation.state": state,
        "observation.images.top": image,
        "action": state + 0.5,
        "observation.gripper_open": np.array([i % 2 == 0]),
        "language.note": f"ep{episode} frame{i}",
    }


def write_episodes(writer: DatasetWriter, lengths: list[int], first_episode: int = 0) -> None:
    for offset, length in enumerate(lengths):
        e = first_episode + offset
        for i in range(length):
            writer.add_frame(frame_value(e, i))
        writer.save_episode(task=f"task {e % 2}")
