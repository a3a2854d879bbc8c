"""`apprentice sim record`: scripted episodes land in a LeRobot v3.0 dataset the reader loads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from apprentice.dataset import DatasetWriter, LeRobotDataset
from apprentice.policies import features_from_dataset
from apprentice.sim import SimError, make_env, make_expert
from apprentice.sim.cli import main as sim_main
from apprentice.sim.cli import resolve_task
from apprentice.sim.record import record, run_expert_episode


def test_sim_record_cli_writes_a_dataset_with_the_expert_actions(tmp_path: Path) -> None:
    root = tmp_path / "reach"
    rc = sim_main(["record", "--env.type=reach", "--num-episodes=3", "--out", str(root), "--frames-after-success=5"])
    assert rc == 0
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and ds.fps == 30
    assert ds.meta.info["robot_type"] == "sim_so101"
    assert ds.meta.tasks == ["Move the gripper tip to the red target."]
    assert set(ds.features) >= {"observation.state", "observation.environment_state", "observation.images.top"}
    # Episode 1 is seed 1: replaying the expert on that seed (the env as record makes it) gives the very
    # actions and transitions stored.
    env = make_env("reach", render=False, terminate_on_success=False)
    frames: list[dict] = []
    ok, n = run_expert_episode(env, make_expert(env), 1, 5, frames.append)
    assert ok
    ep = next(e for e in ds.meta.episodes if e["episode_index"] == 1)
    assert ep["length"] == n
    rows = slice(ep["dataset_from_index"], ep["dataset_from_index"] + n)
    np.testing.assert_allclose(ds.column("action")[rows], np.stack([f["action"] for f in frames]), atol=1e-6)
    video = ds.episode_frames(1, "observation.images.top")
    assert video.shape == (n, 96, 128, 3)
    item = ds[ep["dataset_from_index"]]
    assert tuple(item["observation.images.top"].shape) == (3, 96, 128)

    # The transition columns of LeRobot's sim datasets (lerobot/pusht's info.json declares exactly these).
    for key, dtype in [("next.reward", "float32"), ("next.done", "bool"), ("next.success", "bool")]:
        assert ds.features[key] == {"dtype": dtype, "shape": [1], "names": None}
    schema = pq.read_schema(next((root / "data").rglob("*.parquet")))
    columns = ("next.reward", "next.done", "next.success")
    assert [str(schema.field(k).type) for k in columns] == ["float", "bool", "bool"]  # scalars, as lerobot's
    reward, done, success = (ds.column(k)[rows].reshape(n) for k in columns)
    np.testing.assert_array_equal(reward, np.concatenate([f["next.reward"] for f in frames]))
    np.testing.assert_array_equal(success, np.concatenate([f["next.success"] for f in frames]))
    assert done.tolist() == [False] * (n - 1) + [True]  # the episode's last frame
    assert success[-1] and not success[0] and reward[-1] > reward[0]  # the expert closes in, then succeeds
    last = ds[rows.stop - 1]
    assert last["next.done"].dtype == torch.bool and last["next.done"].item() and last["next.reward"].shape == ()
    # Training takes observations and actions only (as LeRobot's dataset_to_policy_features does).
    inputs, outputs = features_from_dataset(ds.features)
    assert not any(k.startswith("next.") for k in [*inputs, *outputs])


def test_record_refuses_an_existing_root_and_resume_appends(tmp_path: Path) -> None:
    root = tmp_path / "reach"
    first = record("reach", root, 2, seed=0, frames_after_success=2, log=lambda _: None)
    assert first.episodes_saved == 2 and first.seeds == [0, 1] and first.expert_success_rate == 1.0
    with pytest.raises(SimError, match="--resume"):
        record("reach", root, 1, log=lambda _: None)
    record("reach", root, 1, seed=50, resume=True, frames_after_success=2, log=lambda _: None)
    assert LeRobotDataset(root).num_episodes == 3
    # a dataset recorded before the transition columns existed is appended to without them
    old = tmp_path / "old"
    features = {k: v for k, v in LeRobotDataset(root).features.items() if not k.startswith("next.")}
    DatasetWriter.create(old, features=features, fps=30, robot_type="sim_so101").finalize()
    record("reach", old, 1, resume=True, frames_after_success=2, log=lambda _: None)
    assert LeRobotDataset(old).num_episodes == 1 and "next.reward" not in LeRobotDataset(old).features
    with pytest.raises(SimError, match=r"observation\.images\.top shape"):
        record("reach", root, 1, resume=True, env_kwargs={"image_height": 48, "image_width": 64}, log=print)
    assert LeRobotDataset(root).num_episodes == 3


def test_env_type_and_task_names_follow_lerobot() -> None:
    assert resolve_task("aloha", "AlohaTransferCube-v0") == "aloha_transfer_cube"
    assert resolve_task("aloha", None) == "aloha_insertion"  # lerobot's default for --env.type=aloha
    assert resolve_task("aloha", "AlohaInsertion-v0") == "aloha_insertion"
    assert resolve_task("pusht", "PushT-v0") == "pusht"
    assert resolve_task("reach", None) == "reach"
    with pytest.raises(SimError, match="AlohaTransferCube-v0"):
        resolve_task("aloha", "AlohaInsertion-v9")


def test_sim_record_reports_bad_input_as_an_error_exit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "taken").mkdir()
    assert sim_main(["record", "--env.type=reach", "--num-episodes=1", "--out", str(tmp_path / "taken")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert sim_main(["record", "--env.type=mars", "--num-episodes=1", "--out", str(tmp_path / "x")]) == 1
    # --resume on something that is not a dataset: the writer's error, named, not a traceback
    assert sim_main(["record", "--num-episodes=1", "--out", str(tmp_path / "taken"), "--resume"]) == 1
    assert "info.json" in capsys.readouterr().err


def test_kept_failures_count_once_in_the_expert_success_rate(tmp_path: Path) -> None:
    # A tolerance the expert never meets: every run fails and, with keep_failed, is saved anyway.
    result = record("reach", tmp_path / "failed", 2, keep_failed=True, max_attempts=2, frames_after_success=0,
                    env_kwargs={"tolerance": 1e-6}, log=lambda _: None)
    assert (result.episodes_saved, result.episodes_failed, result.attempts) == (2, 2, 2)
    assert result.expert_success_rate == 0.0
