"""`apprentice train` flags: lerobot-train's names, typed values, config files, clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from apprentice.policies import make_config
from apprentice.train import TrainConfig, TrainError
from apprentice.train.cli import main

SEED_FLAGS = [
    "--dataset.repo_id=user/so101_pick", "--dataset.root=/data/so101", "--policy.type=act", "--output_dir=out/act",
    "--job_name=act_so101", "--policy.device=cpu", "--batch_size=16", "--steps=2000", "--eval_freq=500",
    "--save_freq=1000", "--log_freq=50", "--policy.lr=3e-5", "--policy.chunk_size=50", "--policy.n_action_steps=25",
    "--grad_clip_norm=5", "--num_workers=2", "--gradient_accumulation_steps=2", "--wandb.enable=false", "--seed=7",
    "--dataset.streaming=false", "--policy.pretrained_path=ckpt/pretrained_model",
]


def test_seed_flags_fill_the_config():
    cfg = TrainConfig.from_args(SEED_FLAGS)
    assert (cfg.dataset.repo_id, cfg.dataset.root, cfg.dataset.streaming) == ("user/so101_pick", "/data/so101", False)
    assert cfg.policy_type == "act" and cfg.output_dir == "out/act" and cfg.job_name == "act_so101"
    assert (cfg.batch_size, cfg.steps, cfg.eval_freq, cfg.save_freq, cfg.log_freq) == (16, 2000, 500, 1000, 50)
    assert cfg.grad_clip_norm == 5.0 and cfg.num_workers == 2 and cfg.gradient_accumulation_steps == 2
    assert cfg.seed == 7 and cfg.wandb.enable is False and cfg.device == "cpu"
    assert cfg.policy_overrides == {"device": "cpu", "optimizer_lr": 3e-5, "chunk_size": 50, "n_action_steps": 25,
                                    "pretrained_path": "ckpt/pretrained_model"}


def test_space_separated_values_lists_and_null():
    cfg = TrainConfig.from_args(["--policy.type", "diffusion", "--steps", "5", "--policy.down_dims=[64,128]",
                                 "--policy.crop_shape=null", "--dataset.episodes=0,2", "--resume"])
    assert cfg.steps == 5 and cfg.resume is True and cfg.dataset.episodes == [0, 2]
    assert cfg.policy_overrides == {"down_dims": (64, 128), "crop_shape": None}


def test_unknown_flag_lists_valid_ones():
    with pytest.raises(TrainError) as err:
        TrainConfig.from_args(["--policy.type=act", "--stepz=10"])
    assert "--stepz" in str(err.value) and "--steps" in str(err.value) and "--policy.chunk_size" in str(err.value)
    with pytest.raises(TrainError, match=re.escape("--policy.horizon")):
        TrainConfig.from_args(["--policy.type=act", "--policy.horizon=16"])  # a diffusion field, not ACT's


@pytest.mark.parametrize("flags, message", [
    (["--steps=ten"], "--steps=ten"),
    (["--batch_size=0"], "--batch_size"),
    (["--policy.type=act", "--policy.use_vae=maybe"], "--policy.use_vae"),
    (["--policy.type=transformer"], "unknown policy type"),
    (["steps=3"], "unexpected argument"),
])
def test_bad_values_are_errors(flags, message):
    with pytest.raises(TrainError, match=message):
        TrainConfig.from_args(flags)


def test_config_path_then_flags_override(tmp_path):
    # A lerobot-train train_config.json (abridged), with keys we do not use (env, eval, optimizer…).
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps({
        "dataset": {"repo_id": "user/x", "root": "/d", "episodes": None, "video_backend": "torchcodec"},
        "env": None, "policy": {"type": "act", "chunk_size": 20, "n_action_steps": 20, "dim_model": 256},
        "output_dir": "outputs/x", "steps": 100, "batch_size": 4, "optimizer": {"type": "adamw", "grad_clip_norm": 3.0},
        "eval": {"n_episodes": 50}, "wandb": {"enable": False, "project": "lerobot"},
    }))
    cfg = TrainConfig.from_args([f"--config_path={path}", "--steps=300", "--policy.chunk_size=30"])
    assert cfg.steps == 300 and cfg.batch_size == 4 and cfg.grad_clip_norm == 3.0 and cfg.dataset.root == "/d"
    assert cfg.policy_type == "act" and cfg.policy_overrides["chunk_size"] == 30
    assert cfg.policy_overrides["dim_model"] == 256 and cfg.wandb.project == "lerobot"


def test_cli_reports_errors_and_help(capsys, tmp_path):
    assert main(["--help"]) == 0
    assert "--policy.type" in capsys.readouterr().out
    assert main(["--policy.type=act", "--bogus=1"]) == 2
    assert "unknown flag" in capsys.readouterr().err
    assert main(["--policy.type=act", f"--dataset.root={tmp_path / 'missing'}", "--steps=1"]) == 2
    assert "missing" in capsys.readouterr().err


CONFIGS = Path(__file__).resolve().parents[2] / "config" / "policies"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_policy_configs_are_valid(path):
    cfg = TrainConfig.from_args([f"--config_path={path}", "--steps=10"])
    config = make_config(cfg.policy_type, **cfg.policy_overrides)
    assert config.type == cfg.policy_type and cfg.steps == 10
