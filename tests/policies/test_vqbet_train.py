"""`apprentice train --policy.type=vqbet` end to end: the phase switch at the configured step, resume
bit for bit from a checkpoint taken before the switch, and the trained checkpoint acting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from vqbet_helpers import tiny_flags, write_tiny_dataset

from apprentice.policies import load_policy
from apprentice.train.cli import main
from apprentice.train.reports import read_metrics

PHASE = "vqbet.action_head.vqvae_model.discretized"
STEPS = "vqbet.action_head.vqvae_model.optimized_steps"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("vqbet-train") / "tiny")


def _flags(root: Path, out: Path, steps: int) -> list[str]:
    return [*tiny_flags(), f"--dataset.root={root}", f"--output_dir={out}", "--batch_size=4", f"--steps={steps}",
            "--log_freq=1", "--save_freq=2", "--policy.device=cpu", "--seed=3"]


@pytest.fixture(scope="module")
def run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vqbet-run") / "run"
    assert main(_flags(dataset, out, steps=6)) == 0
    return out


def _weights(run: Path, step: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / step / "pretrained_model" / "model.safetensors"))


def test_vqvae_phase_switches_to_gpt_phase_at_n_vqvae_training_steps(run):
    # tiny_flags: n_vqvae_training_steps=3, so steps 1-3 train the VQ-VAE and 4-6 the GPT.
    at2, at4 = _weights(run, "000002"), _weights(run, "000004")
    assert not bool(at2[PHASE]) and int(at2[STEPS]) == 2
    assert bool(at4[PHASE]) and int(at4[STEPS]) == 3
    vq = [k for k in at4 if ".vqvae_model." in k]
    gpt = [k for k in at4 if k.startswith("vqbet.policy.") and not k.endswith(".attn.bias")]
    at6 = _weights(run, "000006")
    assert all(torch.equal(at4[k], at6[k]) for k in vq)  # frozen after the switch
    assert not all(torch.equal(at4[k], at6[k]) for k in gpt)  # the GPT trains
    assert all(torch.equal(at2[k], at4[k]) for k in gpt)  # ... and did not before
    lrs = [r["lr"] for r in read_metrics(run)]
    # lerobot's schedule (logged after each step's scheduler update): constant for the VQ-VAE's 3 steps,
    # then the GPT's warmup over scheduler_warmup_steps=2 starts from 0.
    assert lrs[:2] == [1e-4] * 2 and lrs[2:4] == [0.0, 0.5e-4]
    config = json.loads((run / "checkpoints" / "last" / "pretrained_model" / "config.json").read_text())
    assert config["type"] == "vqbet" and config["n_vqvae_training_steps"] == 3


def test_resume_before_the_switch_is_bit_for_bit(run, dataset, tmp_path):
    out = tmp_path / "run"
    assert main(_flags(dataset, out, steps=2)) == 0
    cfg_path = out / "checkpoints" / "000002" / "pretrained_model" / "train_config.json"
    assert main([f"--config_path={cfg_path}", "--resume=true", "--steps=6"]) == 0
    assert [r["loss"] for r in read_metrics(out)] == [r["loss"] for r in read_metrics(run)]
    a, b = _weights(out, "last"), _weights(run, "last")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_trained_checkpoint_acts(run, dataset):
    from apprentice.dataset import LeRobotDataset

    policy = load_policy(run / "checkpoints" / "last")
    item = LeRobotDataset(dataset)[5]
    obs = {k: item[k][None] for k in ("observation.state", "observation.images.top")}
    torch.manual_seed(0)
    chunk = policy.predict_action_chunk(obs)
    assert chunk.shape == (1, 3, 2) and torch.isfinite(chunk).all()
    assert policy.config.n_action_steps == 3  # the deploy runtime executes one chunk per inference


def test_cuda_graphs_accepts_vqbet_and_names_the_device_it_needs(dataset, tmp_path):
    # VQ-BeT captures one graph per phase (tests/policies/test_vqbet_graph.py); on a CPU only the device is refused.
    from apprentice.train import TrainConfig, TrainError, train

    out = tmp_path / "graphs"
    cfg = TrainConfig.from_args([*_flags(dataset, out, steps=2), "--cuda_graphs=true"])
    with pytest.raises(TrainError, match=r"--cuda_graphs=true needs one CUDA device"):
        train(cfg)
    assert not (out / "checkpoints").exists()
