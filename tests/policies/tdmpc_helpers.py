"""TD-MPC test helpers: a tiny real dataset with rewards (DatasetWriter) and a tiny TD-MPC config."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
    "observation.environment_state": {"dtype": "float32", "shape": [3], "names": ["tx", "ty", "tz"]},
    "action": {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]},
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}

# The real architecture, shrunk so a CPU step takes milliseconds.
TINY = {
    "horizon": 3,
    "latent_dim": 16,
    "mlp_dim": 32,
    "state_encoder_hidden_dim": 32,
    "q_ensemble_size": 3,
    "n_gaussian_samples": 32,
    "n_pi_samples": 4,
    "n_elites": 8,
    "cem_iterations": 2,
}


def tiny_flags(**extra: object) -> list[str]:
    return ["--policy.type=tdmpc", *(f"--policy.{k}={v}" for k, v in {**TINY, **extra}.items())]


def write_reward_dataset(root: Path, episodes: int = 3, length: int = 16, seed: int = 0, rewards: bool = True) -> Path:
    """A point moving toward a target: reward = -distance after the step, done on the last frame."""
    from apprentice.dataset import DatasetWriter

    features = FEATURES if rewards else {k: v for k, v in FEATURES.items() if not k.startswith("next.")}
    rng = np.random.default_rng(seed)
    with DatasetWriter.create(root, features=features, fps=10, robot_type="point") as w:
        for _ in range(episodes):
            target = rng.uniform(-1, 1, size=3).astype(np.float32)
            pos = np.zeros(3, dtype=np.float32)
            for t in range(length):
                action = np.clip(pos + 0.3 * (target - pos), -1, 1).astype(np.float32)
                frame = {"observation.state": pos.copy(), "observation.environment_state": target, "action": action}
                pos = action
                if rewards:
                    frame["next.reward"] = np.array([-np.linalg.norm(target - pos)], dtype=np.float32)
                    frame["next.done"] = np.array([t == length - 1])
                w.add_frame(frame)
            w.save_episode(task="reach")
    return root
