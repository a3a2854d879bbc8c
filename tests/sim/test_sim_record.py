"""`apprentice sim record`: scripted episodes land in a LeRobot v3.0 dataset the reader loads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apprentice.dataset import LeRobotDataset
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
    # Episode 1 is seed 1: replaying the expert on that seed gives the very actions stored.
    env = make_env("reach", render=False)
    frames: list[dict] = []
    ok, n = run_expert_episode(env, make_expert(env), 1, 5, frames.append)
    assert ok
    ep = next(e for e in ds.meta.episodes if e["episode_index"] == 1)
    assert ep["length"] == n
    actions = ds.column("action")[ep["dataset_from_index"] : ep["dataset_from_index"] + n]
    np.testing.assert_allclose(actions, np.stack([f["action"] for f in frames]), atol=1e-6)
    video = ds.episode_frames(1, "observation.images.top")
    assert video.shape == (n, 96, 128, 3)
    item = ds[ep["dataset_from_index"]]
    assert tuple(item["observation.images.top"].shape) == (3, 96, 128)


def test_record_refuses_an_existing_root_and_resume_appends(tmp_path: Path) -> None:
    root = tmp_path / "reach"
    first = record("reach", root, 2, seed=0, frames_after_success=2, log=lambda _: None)
    assert first.episodes_saved == 2 and first.seeds == [0, 1] and first.expert_success_rate == 1.0
    with pytest.raises(SimError, match="--resume"):
        record("reach", root, 1, log=lambda _: None)
    record("reach", root, 1, seed=50, resume=True, frames_after_success=2, log=lambda _: None)
    assert LeRobotDataset(root).num_episodes == 3
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
