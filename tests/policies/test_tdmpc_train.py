"""TD-MPC through `apprentice train`: overfits a small dataset with rewards, resumes bit-for-bit, refuses a
dataset without next.reward by name, and the online flags (LeRobot's names) parse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tdmpc_helpers import tiny_flags, write_reward_dataset

from apprentice.train import TrainConfig, TrainError, train
from apprentice.train.cli import main
from apprentice.train.reports import read_metrics


@pytest.fixture(scope="module")
def reward_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reward_dataset(tmp_path_factory.mktemp("tdmpc") / "ds")


def _flags(root: Path, out: Path, **extra: object) -> list[str]:
    flags = [
        *tiny_flags(),
        f"--dataset.root={root}",
        f"--output_dir={out}",
        "--batch_size=16",
        "--policy.device=cpu",
        "--seed=3",
    ]
    return flags + [f"--{k}={v}" for k, v in extra.items()]


def test_tiny_tdmpc_overfits_a_reward_dataset(reward_dataset, tmp_path):
    train(
        TrainConfig.from_args(
            _flags(reward_dataset, tmp_path / "run", steps=120, log_freq=20, save_freq=120, **{"policy.lr": "1e-3"})
        )
    )
    losses = [r["loss"] for r in read_metrics(tmp_path / "run")]
    assert losses[-1] < losses[0] / 10, losses


def test_resume_is_bit_for_bit(reward_dataset, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(_flags(reward_dataset, straight, steps=6, log_freq=1, save_freq=3)) == 0
    assert main(_flags(reward_dataset, split, steps=3, log_freq=1, save_freq=3)) == 0
    assert main(_flags(reward_dataset, split, steps=6, log_freq=1, save_freq=3, resume="true")) == 0
    assert [r["loss"] for r in read_metrics(split)] == [r["loss"] for r in read_metrics(straight)]
    a = load_file(str(straight / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"))
    b = load_file(str(split / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # model and EMA targets


def test_dataset_without_rewards_is_a_clear_error(tmp_path):
    root = write_reward_dataset(tmp_path / "no_rewards", episodes=1, length=6, rewards=False)
    with pytest.raises(TrainError, match=r"no 'next\.reward' feature"):
        train(TrainConfig.from_args(_flags(root, tmp_path / "run", steps=1)))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_online_flags_take_lerobots_names():
    cfg = TrainConfig.from_args(
        [
            "--policy.type=tdmpc",
            "--env.type=reach",
            "--steps=0",
            "--online_steps=50",
            "--online_rollout_n_episodes=2",
            "--online.sampling_ratio=0.25",
            "--online_env_seed=10000",
            "--online_buffer_capacity=80000",
            "--online_steps_between_rollouts=50",
            "--online.buffer_seed_size=100",
        ]
    )
    o = cfg.online
    assert (
        o.steps,
        o.rollout_n_episodes,
        o.sampling_ratio,
        o.env_seed,
        o.buffer_capacity,
        o.steps_between_rollouts,
        o.buffer_seed_size,
    ) == (50, 2, 0.25, 10000, 80000, 50, 100)
    assert cfg.to_dict()["online"]["steps"] == 50 and cfg.to_dict()["env"]["type"] == "reach"
    with pytest.raises(TrainError, match=r"--env\.type"):
        TrainConfig.from_args(["--policy.type=tdmpc", "--online_steps=5"])
    with pytest.raises(TrainError, match="sampling_ratio"):
        TrainConfig.from_args(
            ["--policy.type=tdmpc", "--env.type=reach", "--online_steps=5", "--online_sampling_ratio=2"]
        )


def test_reward_windows_match_the_dataset_readers(reward_dataset, tmp_path):
    # The frame cache's next.reward / observation windows and pad masks equal LeRobotDataset's delta_timestamps
    # samples (streaming path): the same seed gives the same loss curve.
    for name, extra in (("cache", {}), ("streaming", {"dataset.streaming": "true", "num_workers": 0})):
        train(TrainConfig.from_args(_flags(reward_dataset, tmp_path / name, steps=3, log_freq=1, **extra)))
    assert [r["loss"] for r in read_metrics(tmp_path / "cache")] == [
        r["loss"] for r in read_metrics(tmp_path / "streaming")
    ]
