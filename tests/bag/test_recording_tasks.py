"""The recorder keeps each episode's own task: two instructions in one session -> both in tasks.parquet."""

from __future__ import annotations

from pathlib import Path

from test_recording import Clock, _feed, _recorder

from apprentice.dataset import LeRobotDataset


def test_each_episode_keeps_the_task_it_was_started_with(tmp_path: Path) -> None:
    clock = Clock()
    rec = _recorder(tmp_path, clock, autostart=False, episode_time_s=0)
    rec.open()
    for task, value in (("reach the red target", 1.0), ("reach the blue target", 2.0)):
        assert rec.start_episode(task)[0]
        _feed(rec, clock, 0.3, value)
        assert rec.stop_episode()[0]
        assert rec.wait_converted(60)
    rec.close()
    ds = LeRobotDataset(tmp_path / "ds")
    assert sorted(ds.meta.tasks) == ["reach the blue target", "reach the red target"]
    by_index = {e["episode_index"]: list(e["tasks"]) for e in ds.meta.episodes}
    assert by_index == {0: ["reach the red target"], 1: ["reach the blue target"]}
    first_of_1 = next(e for e in ds.meta.episodes if e["episode_index"] == 1)["dataset_from_index"]
    assert ds[0]["task"] == "reach the red target" and ds[first_of_1]["task"] == "reach the blue target"
