"""`apprentice eval`: metrics on known policies, determinism, eval_info.json + mp4, a real torch policy."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from apprentice.sim import SimError
from apprentice.sim.eval import ExpertPolicy, ZeroPolicy, evaluate
from apprentice.sim.eval_cli import main as eval_main


def test_expert_as_policy_scores_the_expert_rate_and_zero_policy_scores_nothing(tmp_path: Path) -> None:
    # 5 episodes in batches of 2: the last batch has a spare env that must not count
    expert = evaluate(ExpertPolicy, "reach", n_episodes=5, batch_size=2, output_dir=tmp_path, max_episodes_rendered=3)
    agg = expert["overall"]
    metrics = expert["per_task"][0]["metrics"]
    assert agg["success_rate"] == 1.0 and agg["pc_success"] == 100.0 and agg["n_episodes"] == 5
    assert metrics["seeds"] == [100_000 + i for i in range(5)]
    assert all(n < 120 for n in metrics["lengths"])  # terminated on success, not by the time limit
    assert agg["avg_max_reward"] > 0.9
    zero = evaluate(ZeroPolicy(6), "reach", n_episodes=3, batch_size=3)
    assert zero["overall"]["success_rate"] == 0.0
    assert zero["per_task"][0]["metrics"]["lengths"] == [120, 120, 120]
    assert zero["overall"]["avg_max_reward"] < agg["avg_max_reward"]
    assert zero["overall"]["avg_sum_reward"] < agg["avg_sum_reward"] * 3  # held far from every target

    on_disk = json.loads((tmp_path / "eval_info.json").read_text())
    assert on_disk["overall"]["success_rate"] == 1.0 and on_disk["per_task"][0]["metrics"]["successes"] == [True] * 5
    # lerobot-eval's names: videos/<task_group>_<task_id>/eval_episode_<i>.mp4, the first episodes of the task
    videos = [str(tmp_path / f"videos/reach_0/eval_episode_{i}.mp4") for i in range(3)]
    assert on_disk["overall"]["video_paths"] == videos
    assert on_disk["per_group"]["reach"]["video_paths"] == on_disk["overall"]["video_paths"]
    for path, length in zip(on_disk["overall"]["video_paths"], metrics["lengths"]):
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == length + 1  # the reset frame, then one per step of this episode only
        assert frames[0].shape == (96, 128, 3)


def test_same_seed_gives_the_same_results_and_another_seed_does_not() -> None:
    a = evaluate(ZeroPolicy(6), "reach", n_episodes=2, batch_size=2, seed=7)
    b = evaluate(ZeroPolicy(6), "reach", n_episodes=2, batch_size=1, seed=7)
    c = evaluate(ZeroPolicy(6), "reach", n_episodes=2, batch_size=2, seed=8)
    assert a["per_task"] == b["per_task"]
    assert a["per_task"][0]["metrics"]["sum_rewards"] != c["per_task"][0]["metrics"]["sum_rewards"]


def test_eval_cli_with_a_saved_torch_policy_and_action_mse(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch = pytest.importorskip("torch")
    from apprentice.dataset import LeRobotDataset
    from apprentice.policies import features_from_dataset, make_config, make_policy, save_policy, stats_to_tensors
    from apprentice.sim.record import record

    root = tmp_path / "reach"
    record("reach", root, 2, frames_after_success=2, log=lambda _: None)
    ds = LeRobotDataset(root)
    inputs, outputs = features_from_dataset(ds.features)
    config = make_config(
        "act",
        input_features=inputs,
        output_features=outputs,
        chunk_size=40,
        n_action_steps=40,
        dim_model=32,
        dim_feedforward=64,
        n_heads=2,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
    )
    torch.manual_seed(0)
    policy_dir = save_policy(make_policy(config, stats_to_tensors(ds.meta.stats)), tmp_path / "pretrained_model")
    out = tmp_path / "eval"
    argv = [
        f"--policy.path={policy_dir}",
        "--env.type=reach",
        "--eval.n_episodes=2",
        "--eval.batch_size=2",
        "--eval.max_episodes_rendered=0",
        f"--output_dir={out}",
        f"--dataset.root={root}",
        "--dataset.episodes=1",
    ]
    assert eval_main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"] == printed
    assert 0.0 <= printed["success_rate"] <= 1.0 and printed["action_mse"] > 0.0
    # the same checkpoint on another robot: refused by name before any rollout
    assert eval_main([f"--policy.path={policy_dir}", "--env.type=pusht", "--eval.n_episodes=1"]) == 1
    assert "observation.state" in capsys.readouterr().err
    assert eval_main(argv) == 0  # deterministic: the same numbers again
    again = json.loads(capsys.readouterr().out)
    assert again["avg_sum_reward"] == printed["avg_sum_reward"]
    assert again["action_mse"] == pytest.approx(printed["action_mse"])


def test_eval_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert eval_main(["--env.type=reach"]) == 2
    assert eval_main([f"--policy.path={tmp_path / 'missing'}", "--env.type=reach"]) == 1
    assert "missing" in capsys.readouterr().err
    with pytest.raises(SimError):
        evaluate(ZeroPolicy(6), "reach", n_episodes=0)
    assert np.isfinite(evaluate(ZeroPolicy(6), "reach", n_episodes=1)["overall"]["avg_sum_reward"])


def test_observations_reach_the_policy_on_its_device() -> None:
    """A policy on another device (CUDA in practice; `meta` here, which any machine has) gets its inputs there."""
    import torch

    class OnMeta:
        device = torch.device("meta")

        def __init__(self) -> None:
            self.devices: set[str] = set()

        def reset(self) -> None:
            pass

        def select_action(self, batch: dict) -> torch.Tensor:
            self.devices |= {v.device.type for v in batch.values() if isinstance(v, torch.Tensor)}
            return torch.zeros(len(batch["task"]), 6)

    policy = OnMeta()
    result = evaluate(policy, "reach", n_episodes=2, batch_size=2)
    assert policy.devices == {"meta"}
    assert result["overall"]["success_rate"] == 0.0
