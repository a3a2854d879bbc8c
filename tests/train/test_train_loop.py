"""`apprentice train` end to end on a real tiny dataset: checkpoint layout, load, resume, fine-tune."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import policy_flags

from apprentice.policies import load_policy
from apprentice.train import TrainConfig, TrainError, train
from apprentice.train.cli import main
from apprentice.train.rank_report import read_rank_reports
from apprentice.train.reports import read_metrics

SPEC_FILES = Path("/work/shared/specs/lerobot-checkpoints")


def _flags(root: Path, out: Path, kind: str = "act", **extra: object) -> list[str]:
    flags = [*policy_flags(kind), f"--dataset.root={root}", f"--output_dir={out}", "--batch_size=4",
             "--log_freq=1", "--save_freq=2", "--policy.device=cpu", "--seed=5"]
    return flags + [f"--{k}={v}" for k, v in extra.items()]


@pytest.fixture(scope="module")
def act_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("act") / "run"
    assert main(_flags(tiny_dataset, out, steps=4, **{"policy.lr": "1e-3"})) == 0
    return out


def test_checkpoint_layout_matches_lerobot(act_run):
    ckpts = act_run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["000002", "000004", "last"]
    assert (ckpts / "last").resolve().name == "000004"
    files = {str(p.relative_to(ckpts / "last")) for p in (ckpts / "last").rglob("*") if p.is_file()}
    if SPEC_FILES.is_dir():
        spec = {line.removeprefix("last/") for line in (SPEC_FILES / "act" / "files.txt").read_text().split()}
        # Plus our data position (lerobot's resume reads its own files by name and ignores it).
        assert files == spec | {"training_state/data_position.json"}
    assert json.loads((ckpts / "last" / "training_state" / "training_step.json").read_text()) == {"step": 4}
    train_cfg = json.loads((ckpts / "last" / "pretrained_model" / "train_config.json").read_text())
    assert train_cfg["policy"]["type"] == "act" and train_cfg["steps"] == 4


def test_trained_checkpoint_loads_and_acts(act_run, tiny_dataset):
    from apprentice.dataset import LeRobotDataset

    policy = load_policy(act_run / "checkpoints" / "last" / "pretrained_model")
    item = LeRobotDataset(tiny_dataset)[3]
    obs = {k: item[k][None] for k in ("observation.state", "observation.images.top")}
    again = load_policy(act_run / "checkpoints" / "last")
    torch.testing.assert_close(policy.predict_action_chunk(obs), again.predict_action_chunk(obs), rtol=0, atol=0)
    assert policy.select_action(obs).shape == (1, 4)
    losses = [r["loss"] for r in read_metrics(act_run)]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))


def test_resume_continues_the_same_loss_curve(act_run, tiny_dataset, tmp_path):
    out = tmp_path / "run"
    assert main(_flags(tiny_dataset, out, steps=2, **{"policy.lr": "1e-3"})) == 0
    # lerobot's way: point --config_path at the checkpoint's train_config.json.
    cfg_path = out / "checkpoints" / "000002" / "pretrained_model" / "train_config.json"
    assert main([f"--config_path={cfg_path}", "--resume=true", "--steps=4"]) == 0
    assert [r["loss"] for r in read_metrics(out)] == [r["loss"] for r in read_metrics(act_run)]
    a = load_file(str(out / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"))
    b = load_file(str(act_run / "checkpoints" / "last" / "pretrained_model" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_loads_weights_only_and_freezes_backbone(act_run, tiny_dataset, tmp_path):
    pretrained = act_run / "checkpoints" / "last" / "pretrained_model"
    cfg = TrainConfig.from_args([f"--dataset.root={tiny_dataset}", f"--output_dir={tmp_path / 'ft'}",
                                 f"--policy.pretrained_path={pretrained}", "--steps=1", "--batch_size=4",
                                 "--freeze_backbone=true", "--policy.lr=1e-2", "--policy.device=cpu"])
    out = train(cfg)
    assert json.loads((out.parent / "training_state" / "training_step.json").read_text()) == {"step": 1}
    before, after = load_file(str(pretrained / "model.safetensors")), load_file(str(out / "model.safetensors"))
    backbone = [k for k in before if k.startswith("model.backbone.")]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)
    assert not torch.equal(before["model.action_head.weight"], after["model.action_head.weight"])


def test_existing_output_dir_and_broken_resume_are_errors(act_run, tiny_dataset, tmp_path):
    with pytest.raises(TrainError, match="--resume=true"):
        train(TrainConfig.from_args(_flags(tiny_dataset, act_run, steps=5)))
    broken = tmp_path / "broken"
    for src in (act_run / "checkpoints").rglob("*"):
        if src.is_file() and "000004" in str(src):
            dst = broken / "checkpoints" / "000004" / src.relative_to(act_run / "checkpoints" / "000004")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    (broken / "checkpoints" / "last").symlink_to("000004")
    (broken / "checkpoints" / "000004" / "training_state" / "optimizer_state.safetensors").write_bytes(b"garbage")
    with pytest.raises(TrainError, match=re.escape("optimizer_state.safetensors")):
        train(TrainConfig.from_args(_flags(tiny_dataset, broken, steps=6, resume="true")))


def test_rank_report_says_where_the_frames_were_held(act_run, tiny_dataset):
    (report,) = read_rank_reports(act_run)  # one process: one report
    assert (report["rank"], report["world_size"], report["device"], report["steps"]) == (0, 1, "cpu", 4)
    data = report["data"]
    frames = 3 * 24  # write_tiny_dataset: 3 episodes of 24 frames, 48x64 RGB
    assert (data["path"], data["storage"], data["device"], data["layout"]) == ("cache", "memory", "cpu", "replicated")
    assert data["frames_held"] == data["dataset_frames"] == frames
    assert data["frames_gb"] == round(frames * 3 * 48 * 64 / 2**30, 4)
    assert data["samples_per_epoch"] == frames  # batch 4 divides the 72 samples: no sample dropped
    assert "max_gpu_mem_gb" not in report  # CPU run: no GPU figure made up


def test_diffusion_trains_with_warmup_scheduler(tiny_dataset, tmp_path):
    out = train(TrainConfig.from_args(_flags(tiny_dataset, tmp_path / "d", kind="diffusion", steps=2)))
    state = json.loads((out.parent / "training_state" / "scheduler_state.json").read_text())
    assert state["last_epoch"] == 2
    lrs = [r["lr"] for r in read_metrics(tmp_path / "d")]
    assert lrs == pytest.approx([1e-4 * 1 / 2, 1e-4 * 2 / 2])  # linear warmup over 2 steps, as diffusers
    policy = load_policy(out)
    policy.diffusion.num_inference_steps = 2
    obs = {"observation.state": torch.zeros(1, 4), "observation.images.top": torch.rand(1, 3, 48, 64)}
    assert policy.select_action(obs).shape == (1, 4)


def test_progress_without_a_terminal_logs_loss_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    from apprentice.train.progress import Progress

    progress = Progress(total=300, start=100, enabled=True)  # pytest's captured stderr is no terminal
    record = {"loss": 0.5, "lr": 1e-4, "grad_norm": 2.0, "samples_per_s": 80.0}
    with caplog.at_level("INFO", logger="apprentice.train"):
        progress.update(150, record)
    line = caplog.records[-1].getMessage()
    assert progress.bar is None
    assert re.search(r"step 150/300 loss=0\.5000 lr=1\.00e-04 .* steps/s elapsed \d\d:\d\d ETA \d\d:\d\d", line), line


def test_resume_by_output_dir_alone_restores_the_runs_settings(act_run, tiny_dataset, tmp_path):
    """`--output_dir=X --resume=true` (no --config_path): batch, seed, policy fields come from the checkpoint."""
    out = tmp_path / "run"
    assert main(_flags(tiny_dataset, out, steps=2, **{"policy.lr": "1e-3"})) == 0
    assert main([f"--output_dir={out}", "--resume=true", "--steps=4"]) == 0
    assert [r["loss"] for r in read_metrics(out)] == [r["loss"] for r in read_metrics(act_run)]
    saved = json.loads((out / "checkpoints" / "last" / "pretrained_model" / "train_config.json").read_text())
    assert saved["batch_size"] == 4 and saved["seed"] == 5 and saved["steps"] == 4


def test_max_train_s_stops_at_the_budget_with_a_final_checkpoint(tiny_dataset, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="apprentice.train"):
        # a budget every step overruns: the first step is the last, logged and checkpointed as if it were --steps
        assert main(_flags(tiny_dataset, out, steps=1000, max_train_s="1e-6", save_freq=500, log_freq=500)) == 0
    last = out / "checkpoints" / "last"
    assert last.resolve().name == "000001"
    assert json.loads((last / "training_state" / "training_step.json").read_text()) == {"step": 1}
    assert [r["step"] for r in read_metrics(out)] == [1]
    assert "--max_train_s=1e-06 s reached" in caplog.text
    assert load_policy(last / "pretrained_model").config.type == "act"
    with pytest.raises(TrainError, match="--max_train_s must be > 0"):
        TrainConfig(max_train_s=0)


def test_max_train_s_counts_the_data_preparation(tiny_dataset, tmp_path, monkeypatch):
    """The budget is a slot for the whole run: a dataset that takes longer to open (or to cache) than the
    budget leaves one step, not a full budget of steps after it."""
    import time

    import apprentice.train.loop as loop

    opened = loop.open_dataset

    def slow_open(cfg):
        time.sleep(2.0)  # what filling a large frame cache costs, in miniature
        return opened(cfg)

    monkeypatch.setattr(loop, "open_dataset", slow_open)
    out = tmp_path / "run"
    assert main(_flags(tiny_dataset, out, steps=1000, max_train_s="1.5", save_freq=500, log_freq=1)) == 0
    assert (out / "checkpoints" / "last").resolve().name == "000001"
