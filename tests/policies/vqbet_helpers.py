"""VQ-BeT test helpers: a tiny real dataset (DatasetWriter: parquet + mp4) whose actions follow what the
camera shows, and a tiny VQ-BeT config (the real architecture, shrunk so a CPU step takes milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": ["j1", "j2", "j3"]},
    "observation.images.top": {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["j1", "j2"]},
}

TINY = {
    "n_obs_steps": 2,
    "n_action_pred_token": 2,
    "action_chunk_size": 3,
    "crop_shape": [16, 16],
    "spatial_softmax_num_keypoints": 4,
    "n_vqvae_training_steps": 3,
    "vqvae_n_embed": 8,
    "vqvae_embedding_dim": 16,
    "vqvae_enc_hidden_dim": 32,
    "gpt_block_size": 16,
    "gpt_input_dim": 32,
    "gpt_output_dim": 32,
    "gpt_n_layer": 1,
    "gpt_n_head": 2,
    "gpt_hidden_dim": 32,
    "scheduler_warmup_steps": 2,
}


def write_tiny_dataset(root: Path, episodes: int = 3, length: int = 20, seed: int = 0) -> Path:
    from apprentice.dataset import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter.create(root, features=FEATURES, fps=10, robot_type="test_arm", vcodec="h264") as w:
        for _ in range(episodes):
            target = rng.uniform(-1, 1, size=2)
            state = np.zeros(3, dtype=np.float32)
            for t in range(length):
                img = np.zeros((32, 32, 3), dtype=np.uint8)
                r, c = int((target[0] + 1) * 10) + 2, int((target[1] + 1) * 10) + 2
                img[r : r + 6, c : c + 6] = (255, 200, 40)
                action = (0.3 * target + 0.02 * t * np.array([1.0, -1.0])).astype(np.float32)
                w.add_frame({"observation.state": state.copy(), "observation.images.top": img, "action": action})
                state = np.array([*action, t / length], dtype=np.float32)
            w.save_episode(task="reach the target")
    return root


def tiny_flags(**extra: object) -> list[str]:
    """`apprentice train` flags for the tiny VQ-BeT, plus `extra` (policy fields as policy.<name>)."""
    flags = ["--policy.type=vqbet"]
    for key, value in {**TINY, **extra}.items():
        text = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
        flags.append(f"--policy.{key}={text}")
    return flags
