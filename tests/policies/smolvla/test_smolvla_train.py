"""`apprentice train --policy.type=smolvla` end to end on CPU: the dataset's tasks flow in, only the expert
trains, the checkpoint reloads to the same actions, fine-tuning from it works, and `--task` fills in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from smolvla_helpers import TASKS, TINY, observation, write_dataset

from apprentice.policies import load_policy, save_policy
from apprentice.train.cli import main


def _flags(root: Path, out: Path, vlm_dir: Path, steps: int, *extra: str) -> list[str]:
    tiny = [f"--policy.{k}=" + (f"[{','.join(map(str, v))}]" if isinstance(v, list) else str(v))
            for k, v in TINY.items()]
    return ["--policy.type=smolvla", *tiny, f"--policy.vlm_model_name={vlm_dir}", f"--dataset.root={root}",
            f"--output_dir={out}", "--batch_size=4", f"--steps={steps}", "--log_freq=1", "--save_freq=1",
            "--policy.device=cpu", "--num_workers=0", "--seed=1", *extra]


@pytest.fixture(scope="module")
def run(two_task_dataset: Path, vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smolvla-run") / "run"
    assert main(_flags(two_task_dataset, out, vlm_dir, 3)) == 0
    return out


def test_training_updates_the_expert_only_and_reloads_to_the_same_actions(run, tmp_path):
    ckpt = run / "checkpoints"
    first, last = (load_file(str(ckpt / s / "pretrained_model" / "model.safetensors")) for s in ("000001", "000003"))
    expert = [k for k in first if ".lm_expert." in k or k.startswith("model.action_")]
    vlm = [k for k in first if ".vlm." in k]
    assert all(torch.equal(first[k], last[k]) for k in vlm)
    assert sum(not torch.equal(first[k], last[k]) for k in expert) > len(expert) // 2
    pretrained = ckpt / "last" / "pretrained_model"
    assert (pretrained / "vlm" / "tokenizer.json").is_file() and (pretrained / "vlm" / "config.json").is_file()
    noise = torch.randn(2, TINY["chunk_size"], TINY["max_action_dim"], generator=torch.Generator().manual_seed(0))
    policy = load_policy(pretrained)
    a = policy.predict_action_chunk(observation(task=list(TASKS)), noise=noise)
    save_policy(policy, tmp_path / "resaved")
    b = load_policy(tmp_path / "resaved").predict_action_chunk(observation(task=list(TASKS)), noise=noise)
    assert torch.equal(a, b)
    assert policy.select_action(observation(task=list(TASKS))).shape == (2, 4)


def test_fine_tuning_with_a_task_override_in_bf16_with_checkpointing(run, two_task_dataset, tmp_path):
    pretrained = run / "checkpoints" / "last" / "pretrained_model"
    flags = [f"--policy.pretrained_path={pretrained}", f"--dataset.root={two_task_dataset}",
             f"--output_dir={tmp_path / 'ft'}", "--batch_size=2", "--steps=1", "--policy.device=cpu",
             "--num_workers=0", "--task=move left", "--task_override=true",
             # the memory flags of the seed's troubleshooting section, all at once
             "--precision=bf16", "--grad_checkpointing=true", "--gradient_accumulation_steps=2"]
    assert main(flags) == 0
    tuned = load_policy(tmp_path / "ft" / "checkpoints" / "last" / "pretrained_model")
    assert tuned.config.num_vlm_layers == TINY["num_vlm_layers"]
    before, after = (load_file(str(d / "model.safetensors")) for d in (pretrained, tmp_path / "ft" / "checkpoints"
                                                                         / "last" / "pretrained_model"))
    assert not torch.equal(before["model.action_out_proj.weight"], after["model.action_out_proj.weight"])
    assert (tmp_path / "ft" / "checkpoints" / "last" / "pretrained_model" / "vlm" / "tokenizer.json").is_file()


def test_episodes_without_a_task_need_the_task_flag(vlm_dir, tmp_path, capsys):
    root = write_dataset(tmp_path / "no-task", tasks=[" "], episodes=2, length=8)
    assert main(_flags(root, tmp_path / "a", vlm_dir, 1)) != 0
    assert 'task_index [0] in meta/tasks.parquet have no instruction and no --task was given; pass --task="…"' in (
        capsys.readouterr().err)
    assert not (tmp_path / "a" / "checkpoints").exists()
    assert main(_flags(root, tmp_path / "c", vlm_dir, 1, "--task_override=true")) != 0
    assert "--task_override=true needs --task" in capsys.readouterr().err
    assert main(_flags(root, tmp_path / "b", vlm_dir, 1, "--task=reach the red target")) == 0
