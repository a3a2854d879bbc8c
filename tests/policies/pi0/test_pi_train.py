"""`apprentice train` with pi05 from scratch and pi0 fine-tuned from a pretrained_path (the real trainer,
a tiny real dataset, tiny sizes): losses are finite, weights move, the checkpoint loads and acts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pi_helpers import TINY, tiny_policy, tiny_tokenizer, write_tiny_dataset
from safetensors.torch import load_file

from apprentice.policies import load_policy, save_policy
from apprentice.train.cli import main
from apprentice.train.reports import read_metrics

WEIGHTS = "checkpoints/{}/pretrained_model/model.safetensors"


def _flags(root: Path, out: Path, **extra: object) -> list[str]:
    flags = [f"--dataset.root={root}", f"--output_dir={out}", "--batch_size=2", "--steps=3", "--log_freq=1",
             "--save_freq=3", "--policy.device=cpu", "--seed=3", "--num_workers=0", "--grad_clip_norm=1.0"]
    for key, value in {**TINY, **extra}.items():
        text = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
        flags.append(f"--policy.{key}={text}")
    return flags


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("pi-train") / "tiny")


def test_pi05_trains_from_scratch_with_checkpointing(dataset, tmp_path, monkeypatch):
    tok_dir = tmp_path / "tok"
    tiny_tokenizer().save_pretrained(str(tok_dir))
    monkeypatch.setenv("APPRENTICE_PALIGEMMA_TOKENIZER", str(tok_dir))  # no Hub here: a local tokenizer
    out = tmp_path / "run"
    assert main(["--policy.type=pi05", "--grad_checkpointing=true", *_flags(dataset, out)]) == 0
    losses = [m["loss"] for m in read_metrics(out)]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    policy = load_policy(out / "checkpoints/last/pretrained_model")
    assert policy.config.type == "pi05" and policy.normalizer._modes["action"] == "QUANTILES"
    obs = {"observation.state": torch.zeros(1, 3), "observation.images.top": torch.rand(1, 3, 24, 32),
           "task": "pick the cube"}
    assert torch.isfinite(policy.select_action(obs)).all()


def test_pi0_fine_tunes_from_pretrained_path_expert_only(dataset, tmp_path):
    torch.manual_seed(0)
    base_dir = save_policy(tiny_policy("pi0"), tmp_path / "base")  # writes its tokenizer files too
    base = load_file(str(base_dir / "model.safetensors"))
    out = tmp_path / "run"
    assert main([f"--policy.pretrained_path={base_dir}", *_flags(dataset, out, train_expert_only=True)]) == 0
    tuned = load_file(str(out / WEIGHTS.format("000003")))
    assert tuned.keys() == base.keys()
    vlm = "model.paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.up_proj.weight"
    expert = "model.paligemma_with_expert.gemma_expert.model.layers.0.mlp.up_proj.weight"
    assert torch.equal(tuned[vlm], base[vlm])  # the frozen VLM did not move
    assert not torch.equal(tuned[expert], base[expert])
    assert not torch.equal(tuned["model.action_out_proj.weight"], base["model.action_out_proj.weight"])
