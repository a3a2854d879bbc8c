"""π0-FAST through the real trainer (`apprentice.train`) on a tiny real dataset: the batches' task strings
reach the prompt, the checkpoint is lerobot-named and loads for acting, fine-tuning from it works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pi0fast_helpers import tiny_fields
from safetensors.torch import load_file
from train_helpers import write_tiny_dataset

from apprentice.dataset import LeRobotDataset
from apprentice.policies import load_policy
from apprentice.train import TrainConfig, train
from apprentice.train.reports import read_metrics

pytest.importorskip("transformers")


def _flag(key: str, value: object) -> str:
    return f"--policy.{key}={json.dumps(value) if isinstance(value, dict | list) else value}"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("pi0fast")
    data = write_tiny_dataset(tmp / "data", episodes=2, length=12)
    fields = tiny_fields(tmp, chunk=6, dim=4, image_size=32)
    flags = ["--policy.type=pi0fast", *[_flag(k, v) for k, v in fields.items()], f"--dataset.root={data}",
             f"--output_dir={tmp / 'run'}", "--batch_size=2", "--steps=3", "--log_freq=1", "--save_freq=3",
             "--policy.device=cpu", "--num_workers=0", "--policy.lr=1e-3", "--grad_checkpointing=true",
             "--freeze_backbone=true"]
    train(TrainConfig.from_args(flags))
    return tmp / "run", data


def test_trains_and_checkpoint_acts(run):
    out, data = run
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3] and all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    ckpt = out / "checkpoints" / "last" / "pretrained_model"
    assert json.loads((ckpt / "config.json").read_text())["type"] == "pi0_fast"
    weights = load_file(str(ckpt / "model.safetensors"))
    assert "model.paligemma_with_expert.paligemma.lm_head.weight" in weights
    policy = load_policy(ckpt)
    item = LeRobotDataset(data)[5]
    obs = {k: item[k][None] for k in ("observation.state", "observation.images.top")} | {"task": [item["task"]]}
    a, b = policy.predict_action_chunk(obs), load_policy(out / "checkpoints" / "last").predict_action_chunk(obs)
    assert a.shape == (1, 6, 4) and torch.equal(a, b)


def test_frozen_vision_tower_unchanged_and_prompt_uses_task(run, tmp_path):
    out, data = run
    ckpt = out / "checkpoints" / "last" / "pretrained_model"
    cfg = TrainConfig.from_args([f"--policy.pretrained_path={ckpt}", f"--dataset.root={data}", "--steps=1",
                                 f"--output_dir={tmp_path / 'ft'}", "--batch_size=2", "--policy.device=cpu",
                                 "--num_workers=0", "--freeze_backbone=true", "--policy.lr=1e-2"])
    after = load_file(str(train(cfg) / "model.safetensors"))
    before = load_file(str(ckpt / "model.safetensors"))
    vision = [k for k in before if ".vision_tower." in k]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert not torch.equal(before["model.paligemma_with_expert.paligemma.lm_head.weight"],
                           after["model.paligemma_with_expert.paligemma.lm_head.weight"])
    policy = load_policy(ckpt)
    ids, mask = policy.tokens.prompts(["reach the target"], None, torch.device("cpu"))
    assert policy.tokens.text.convert_ids_to_tokens(ids[0][mask[0]].tolist())[3:6] == ["reach", "the", "target"]
