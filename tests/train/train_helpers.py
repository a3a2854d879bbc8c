"""Training test helpers: a tiny real dataset (DatasetWriter: parquet + mp4) whose actions depend on what the
camera sees, and tiny policy configs. Not conftest, so that test folders can be run together."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["j1", "j2", "j3", "j4"]},
    "observation.images.top": {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [4], "names": ["j1", "j2", "j3", "j4"]},
}


def write_tiny_dataset(root: Path, episodes: int = 3, length: int = 24, seed: int = 0) -> Path:
    from apprentice.dataset import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter.create(root, features=FEATURES, fps=30, robot_type="test_arm", vcodec="h264") as w:
        for _ in range(episodes):
            target = rng.uniform(-1, 1, size=2)
            state = np.zeros(4, dtype=np.float32)
            for t in range(length):
                img = np.zeros((48, 64, 3), dtype=np.uint8)
                r, c = int((target[0] + 1) * 18) + 2, int((target[1] + 1) * 26) + 2
                img[r:r + 8, c:c + 8] = (255, 200, 40)
                img[..., 2] = np.uint8(8 * t)
                action = (state + 0.2 * np.array([*target, -target[0], t / length])).astype(np.float32)
                w.add_frame({"observation.state": state.copy(), "observation.images.top": img, "action": action})
                state = action
            w.save_episode(task="reach the target")
    return root


# Tiny policy configs: the real architectures, shrunk so a CPU step takes milliseconds.
TINY_ACT = {"dim_model": 32, "dim_feedforward": 64, "n_heads": 2, "n_encoder_layers": 1, "n_vae_encoder_layers": 1,
            "chunk_size": 5, "n_action_steps": 5, "latent_dim": 8}
TINY_DIFFUSION = {"down_dims": [32, 64], "horizon": 8, "n_action_steps": 4, "drop_n_last_frames": 3,
                  "diffusion_step_embed_dim": 16, "spatial_softmax_num_keypoints": 8, "num_train_timesteps": 20,
                  "scheduler_warmup_steps": 2, "kernel_size": 3}


def policy_flags(kind: str) -> list[str]:
    tiny = TINY_ACT if kind == "act" else TINY_DIFFUSION
    flags = [f"--policy.type={kind}"]
    for key, value in tiny.items():
        text = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
        flags.append(f"--policy.{key}={text}")
    return flags
