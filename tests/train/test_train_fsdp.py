"""FSDP2 on CPU: `torchrun --nproc_per_node=2 -m apprentice.train --fsdp=true` with gloo. The gathered
checkpoint loads in one plain process; resuming from it (weights + sharded optimizer state) continues the
uninterrupted run exactly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import policy_flags

from apprentice.dataset import LeRobotDataset
from apprentice.policies import load_policy
from apprentice.train import TrainConfig, TrainError, train
from apprentice.train.reports import read_metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*flags: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "apprentice.train", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow  # two torchrun launches of two processes each
def test_fsdp_two_processes_save_load_resume(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "fsdp"
    common = [*policy_flags("act"), "--policy.dropout=0.0", f"--dataset.root={tiny_dataset}", "--batch_size=4",
              "--log_freq=1", "--save_freq=1", "--policy.device=cpu", "--num_workers=0", "--fsdp=true",
              "--policy.lr=1e-3"]
    _torchrun(*common, f"--output_dir={out}", "--steps=2")
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2] and all(r["grad_norm"] > 0 for r in records)
    ckpt = out / "checkpoints" / "000002" / "pretrained_model"
    full = load_file(str(ckpt / "model.safetensors"))
    assert "model.action_head.weight" in full and not any("_fsdp" in k or "module." in k for k in full)
    first = load_file(str(out / "checkpoints" / "000001" / "pretrained_model" / "model.safetensors"))
    assert not torch.equal(first["model.action_head.weight"], full["model.action_head.weight"])

    # One plain process loads the gathered checkpoint and acts.
    policy = load_policy(ckpt)
    item = LeRobotDataset(tiny_dataset)[3]
    obs = {k: item[k][None] for k in ("observation.state", "observation.images.top")}
    actions = policy.predict_action_chunk(obs)
    assert actions.shape == (1, 5, 4) and torch.isfinite(actions).all()

    # Resume step 2 from checkpoint 1 under FSDP: the same weights and loss as the uninterrupted run.
    shutil.copytree(ckpt, tmp_path / "uninterrupted")
    saved = out / "checkpoints" / "000001" / "pretrained_model" / "train_config.json"
    _torchrun("--resume=true", f"--config_path={saved}", "--steps=2", "--num_workers=0")
    resumed = load_file(str(ckpt / "model.safetensors"))
    assert all(torch.equal(resumed[k], full[k]) for k in full)
    assert read_metrics(out)[-1]["loss"] == records[-1]["loss"]
    again = load_policy(ckpt).predict_action_chunk(obs)
    torch.testing.assert_close(again, actions, rtol=0, atol=0)


def test_fsdp_needs_torchrun(tiny_dataset: Path, tmp_path: Path):
    cfg = TrainConfig.from_args([*policy_flags("act"), f"--dataset.root={tiny_dataset}", "--steps=1",
                                 f"--output_dir={tmp_path / 'x'}", "--policy.device=cpu", "--fsdp=true"])
    with pytest.raises(TrainError, match="torchrun"):
        train(cfg)
