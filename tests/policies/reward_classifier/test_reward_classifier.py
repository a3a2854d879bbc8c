"""The reward classifier trains with `apprentice train` on a tiny dataset labelled by success frames
(`next.reward`), reaches high accuracy on unseen frames, and checkpoints round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from apprentice.policies import PolicyError, load_policy, make_config, make_policy

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "observation.images.front": {"dtype": "video", "shape": [48, 48, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}


def frame(rng: np.random.Generator, lifted: bool) -> np.ndarray:
    """A cube somewhere low in the frame, or lifted into the top third on success frames."""
    img = np.full((48, 48, 3), 40, np.uint8)
    r = int(rng.integers(1, 12)) if lifted else int(rng.integers(28, 40))
    c = int(rng.integers(2, 40))
    img[r:r + 6, c:c + 6] = (230, 60, 60)
    return img


def write_labelled(root: Path, episodes: int, seed: int) -> Path:
    from apprentice.dataset import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter.create(root, features=FEATURES, fps=10, robot_type="sim", vcodec="h264") as w:
        for _ in range(episodes):
            n = 12
            for t in range(n):
                success = t >= n - 4  # the last frames of each episode: the cube is up
                w.add_frame({
                    "observation.state": np.zeros(2, np.float32),
                    "observation.images.front": frame(rng, success),
                    "action": np.zeros(2, np.float32),
                    "next.reward": np.array([float(success)], np.float32),
                    "next.done": np.array([t == n - 1]),
                })
            w.save_episode(task="pick")
    return root


def test_reward_classifier_trains_on_success_frames(tmp_path: Path) -> None:
    from apprentice.train.config import TrainConfig
    from apprentice.train.loop import train

    data = write_labelled(tmp_path / "data", episodes=8, seed=0)
    cfg = TrainConfig.from_args([
        "--policy.type=reward_classifier", f"--dataset.root={data}", f"--output_dir={tmp_path / 'out'}",
        "--steps=250", "--batch_size=32", "--log_freq=50", "--save_freq=250", "--policy.num_cameras=1",
        "--policy.learning_rate=1e-3", "--policy.hidden_dim=32", "--policy.latent_dim=32", "--policy.device=cpu",
        "--num_workers=0",
    ])
    path = train(cfg)
    model = load_policy(path)
    rng = np.random.default_rng(99)
    labels = rng.integers(0, 2, size=64).astype(bool)
    imgs = np.stack([frame(rng, bool(y)) for y in labels]).transpose(0, 3, 1, 2)
    pred = model.predict_reward({"observation.images.front": torch.from_numpy(imgs)})
    accuracy = float((pred.numpy() == labels).mean())
    assert accuracy >= 0.9, accuracy
    # lerobot's module names, the shared trunk once.
    keys = set(model.state_dict())
    assert "classifier_head.4.weight" in keys and "encoders.observation_images_front.1.kernel" in keys
    assert any(k.startswith("encoder.image_enc_layers.") for k in keys)
    assert not any(k.startswith("encoders.observation_images_front.0.") for k in keys)


def test_bad_config_is_a_clear_error() -> None:
    features = {"observation.images.front": {"type": "VISUAL", "shape": [3, 48, 48]}}
    with pytest.raises(PolicyError, match="num_cameras=2"):
        make_config("reward_classifier", input_features=features)
    with pytest.raises(PolicyError, match="too small"):
        make_policy(make_config("reward_classifier", input_features={
            "observation.images.front": {"type": "VISUAL", "shape": [3, 24, 24]}}, num_cameras=1),
            {"observation.images.front": {"mean": torch.zeros(3, 1, 1), "std": torch.ones(3, 1, 1)}})
    with pytest.raises(PolicyError, match=r"needs an observation\.images"):
        make_config("reward_classifier", input_features={"observation.state": {"type": "STATE", "shape": [2]}},
                    num_cameras=1)
