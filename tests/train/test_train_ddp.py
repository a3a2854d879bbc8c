"""DistributedDataParallel on CPU: `torchrun --nproc_per_node=2 -m apprentice.train` with gloo."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file
from train_helpers import policy_flags

from apprentice.train.rank_report import read_rank_reports
from apprentice.train.reports import read_metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "apprentice.train", *policy_flags("act"),
           f"--dataset.root={tiny_dataset}", f"--output_dir={out}", "--batch_size=4", "--steps=2", "--log_freq=1",
           "--policy.device=cpu", "--num_workers=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2]
    assert records[-1]["samples_per_s"] > 0
    # Every rank reports its data: the frames replicated (each holds all 72), the samples sharded (36 each).
    reports = read_rank_reports(out)
    assert [(r["rank"], r["world_size"], r["steps"]) for r in reports] == [(0, 2, 2), (1, 2, 2)]
    assert all(r["data"]["frames_held"] == r["data"]["dataset_frames"] == 72 for r in reports)
    assert all(r["data"]["layout"] == "replicated" for r in reports)
    assert [r["data"]["samples_per_epoch"] for r in reports] == [36, 36]
    # Only rank 0 writes; the checkpoint is whole and loadable.
    weights = load_file(str(out / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"))
    assert "model.action_head.weight" in weights and not any(k.startswith("module.") for k in weights)
