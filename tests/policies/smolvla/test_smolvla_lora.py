"""LoRA fine-tuning of SmolVLA (`--policy.use_peft=true`, lerobot's `--peft.*`) through the real trainer:
only the adapters train, the checkpoint is PEFT's adapter layout on the base, it reloads to the same
actions, merging gives the same actions, and bad flags get one clear error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from smolvla_helpers import TASKS, TINY, fields, observation, stats

from apprentice.policies import load_policy, make_policy, save_policy
from apprentice.policies.lora import PeftSettings, apply_lora, merge_lora, trainable_parameters
from apprentice.train.cli import main
from apprentice.train.config import TrainConfig

pytest.importorskip("peft")

EXPERT_QV = r"model\.vlm_with_expert\.lm_expert\.layers\.\d+\.self_attn\.(q|v)_proj"
PROJECTIONS = ["state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in", "action_time_mlp_out"]


def _noise() -> torch.Tensor:
    return torch.randn(2, TINY["chunk_size"], TINY["max_action_dim"], generator=torch.Generator().manual_seed(0))


def _actions(policy) -> torch.Tensor:
    return policy.predict_action_chunk(observation(task=list(TASKS)), noise=_noise())


@pytest.fixture(scope="module")
def base(vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_policy(make_policy("smolvla", stats(), **fields(vlm_dir)),
                       tmp_path_factory.mktemp("smolvla-base") / "pretrained_model")


def _flags(root: Path, out: Path, pretrained: Path, *extra: str) -> list[str]:
    return [f"--policy.pretrained_path={pretrained}", f"--dataset.root={root}", f"--output_dir={out}",
            "--batch_size=4", "--steps=2", "--save_freq=1", "--log_freq=1", "--policy.device=cpu",
            "--num_workers=0", "--seed=1", "--policy.optimizer_lr=1e-2", *extra]


@pytest.fixture(scope="module")
def run(base: Path, two_task_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smolvla-lora") / "run"
    assert main(_flags(two_task_dataset, out, base, "--policy.use_peft=true", "--peft.r=4", "--peft.lora_alpha=8")) == 0
    return out


def test_only_the_adapters_are_trainable(base):
    policy = load_policy(base).train()
    total = sum(p.numel() for p in policy.parameters())
    policy.config.pretrained_path = str(base)
    apply_lora(policy, PeftSettings(r=4))
    trainable = trainable_parameters(policy)
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    adapted = sorted({n.rsplit(".lora_", 1)[0] for n in trainable})
    qv = [n for n in adapted if re.fullmatch(EXPERT_QV, n)]
    assert len(qv) == 2 * TINY["num_vlm_layers"]  # q and v of every expert layer
    assert sorted(n for n in adapted if n not in qv) == sorted(f"model.{p}" for p in PROJECTIONS)
    # rank 4: A is (4, in), B is (out, 4) for each adapted linear layer
    linear = {n: m for n, m in policy.named_modules() if n in adapted}
    expected = sum(4 * (m.in_features + m.out_features) for m in linear.values())
    assert sum(p.numel() for p in trainable.values()) == expected < total // 20


def test_training_changes_only_the_adapters_and_reloads_to_the_same_actions(run, base, tmp_path):
    ckpt = run / "checkpoints"
    last = ckpt / "last" / "pretrained_model"
    assert not (last / "model.safetensors").exists()
    adapter_cfg = json.loads((last / "adapter_config.json").read_text())
    assert adapter_cfg["peft_type"] == "LORA" and adapter_cfg["r"] == 4 and adapter_cfg["lora_alpha"] == 8
    assert Path(adapter_cfg["base_model_name_or_path"]) == base.resolve()
    assert json.loads((last / "config.json").read_text())["use_peft"] is True
    train_cfg = json.loads((last / "train_config.json").read_text())
    assert train_cfg["peft"]["r"] == 4 and train_cfg["policy"]["use_peft"] is True
    first, second = (load_file(str(ckpt / s / "pretrained_model" / "adapter_model.safetensors"))
                     for s in ("000001", "000002"))
    assert "base_model.model.model.action_out_proj.lora_A.weight" in first  # PeftModel's saved key names
    assert all(".lora_A." in k or ".lora_B." in k for k in first)
    assert sum(not torch.equal(first[k], second[k]) for k in first) > len(first) // 2

    tuned = load_policy(last)
    base_state = load_file(str(base / "model.safetensors"))
    for name, value in tuned.state_dict().items():
        if "lora_" not in name:  # every base weight is exactly the base checkpoint's
            assert torch.equal(value, base_state[name.replace(".base_layer.", ".")]), name
    a = _actions(tuned)
    assert not torch.allclose(a, _actions(load_policy(base)))  # the adapter changes the actions
    save_policy(tuned, tmp_path / "resaved")
    assert torch.equal(a, _actions(load_policy(tmp_path / "resaved")))

    merged = merge_lora(tuned)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_actions(merged), a, rtol=1e-4, atol=1e-5)
    save_policy(merged, tmp_path / "merged")
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["use_peft"] is False
    assert torch.equal(_actions(load_policy(tmp_path / "merged")), _actions(merged))


def test_fine_tuning_continues_from_an_adapter_checkpoint(run, two_task_dataset, tmp_path):
    adapter = run / "checkpoints" / "last" / "pretrained_model"
    assert main(_flags(two_task_dataset, tmp_path / "more", adapter, "--steps=1")) == 0
    more = tmp_path / "more" / "checkpoints" / "last" / "pretrained_model"
    before, after = (load_file(str(d / "adapter_model.safetensors")) for d in (adapter, more))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)


def test_bad_peft_flags_give_one_clear_error(base, two_task_dataset, tmp_path, capsys):
    assert main(_flags(two_task_dataset, tmp_path / "a", base, "--peft.target_modules=no_such_proj")) == 2
    err = capsys.readouterr().err
    assert "--peft.target_modules=no_such_proj matches no linear layer of the smolvla policy" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "a" / "checkpoints").exists()
    assert main(_flags(two_task_dataset, tmp_path / "b", base, "--peft.method_type=IA3")) == 2
    assert "--peft.method_type=IA3: only LORA is supported" in capsys.readouterr().err


def test_peft_flags_turn_it_on_and_lists_parse():
    cfg = TrainConfig.from_args(["--policy.type=smolvla", '--peft.target_modules=["q_proj","v_proj"]',
                                 "--peft.full_training_modules=[state_proj]", "--peft.lora_dropout=0.1"])
    assert cfg.use_peft and cfg.peft.target_modules == ["q_proj", "v_proj"]
    assert cfg.peft.full_training_modules == ["state_proj"] and cfg.peft.lora_dropout == 0.1
    regex = TrainConfig.from_args(["--policy.type=smolvla", r"--peft.target_modules=.*\.(q|v)_proj"])
    assert regex.peft.target_modules == r".*\.(q|v)_proj"
    assert TrainConfig.from_args(["--policy.type=smolvla"]).to_dict()["peft"] is None


def test_full_training_modules_train_in_full_and_reload(base, tmp_path):
    policy = load_policy(base).train()
    policy.config.pretrained_path = str(base)
    apply_lora(policy, PeftSettings(r=2, target_modules=EXPERT_QV, full_training_modules=["state_proj"]))
    names = set(trainable_parameters(policy))
    assert {"model.state_proj.weight", "model.state_proj.bias"} <= names
    with torch.no_grad():
        policy.model.state_proj.weight.add_(1.0)
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_()
    a = _actions(policy)
    save_policy(policy, tmp_path / "ft")
    again = load_policy(tmp_path / "ft")
    assert set(trainable_parameters(again)) == names
    assert torch.equal(_actions(again), a)
    # PEFT's own loader (what lerobot's make_policy runs for use_peft=true) reads the same adapter onto the base.
    from peft import PeftModel

    theirs = PeftModel.from_pretrained(load_policy(base), str(tmp_path / "ft")).eval()
    torch.testing.assert_close(theirs.base_model.model.predict_action_chunk(
        observation(task=list(TASKS)), noise=_noise()), a, rtol=0, atol=1e-6)


def test_use_peft_without_a_pretrained_policy_is_refused(vlm_dir, two_task_dataset, tmp_path, capsys):
    tiny = [f"--policy.{k}=" + (f"[{','.join(map(str, v))}]" if isinstance(v, list) else str(v))
            for k, v in TINY.items()]
    flags = ["--policy.type=smolvla", *tiny, f"--policy.vlm_model_name={vlm_dir}", f"--dataset.root={two_task_dataset}",
             f"--output_dir={tmp_path / 'x'}", "--steps=1", "--policy.device=cpu", "--num_workers=0",
             "--policy.use_peft=true"]
    assert main(flags) == 2
    assert "--policy.use_peft=true adapts a trained policy: pass --policy.pretrained_path=" in capsys.readouterr().err


def test_resume_continues_the_adapter(run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run, out, symlinks=True)
    assert main([f"--output_dir={out}", "--resume=true", "--steps=3", "--num_workers=0"]) == 0
    third = out / "checkpoints" / "000003" / "pretrained_model"
    assert not (third / "model.safetensors").exists()
    before, after = (load_file(str(d / "adapter_model.safetensors"))
                     for d in (out / "checkpoints" / "000002" / "pretrained_model", third))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    assert json.loads((third / "train_config.json").read_text())["peft"]["r"] == 4
