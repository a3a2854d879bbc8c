"""Edits are safe by default: a new root or an atomic in-place swap; a killed edit leaves the source intact."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apprentice.dataset import DatasetError, LeRobotDataset, edit
from apprentice.dataset.cli import main
from apprentice.dataset.verify import verify


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_out_must_be_new_or_empty(make_dataset, tmp_path):
    src = make_dataset([3, 3])
    before = _digest(src)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="taken: already exists and is not empty"):
        edit.delete_episodes(src, [0], out=tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    with pytest.raises(DatasetError, match="is inside the source"):
        edit.delete_episodes(src, [0], out=src / "sub")
    with pytest.raises(DatasetError, match=r"--out DST .* or --in-place"):
        edit.delete_episodes(src, [0])
    with pytest.raises(DatasetError, match="not both"):
        edit.delete_episodes(src, [0], out=tmp_path / "x", in_place=True)
    (tmp_path / "empty").mkdir()
    assert LeRobotDataset(edit.delete_episodes(src, [0], out=tmp_path / "empty")).num_episodes == 1
    assert _digest(src) == before


def test_in_place_swap_replaces_the_source(make_dataset, tmp_path):
    src = make_dataset([3, 4, 5])
    assert main(["delete_episodes", str(src), "--episodes", "0-1", "--in-place"]) == 0  # lerobot's name too
    ds = LeRobotDataset(src)
    verify(src)
    assert (ds.num_episodes, ds.num_frames) == (1, 5)
    assert sorted(p.name for p in src.parent.iterdir()) == ["ds"]  # nothing left beside it


def test_cli_edits_print_the_result(make_dataset, tmp_path, capsys):
    src = make_dataset([3, 4, 5, 6])
    assert main(["split", str(src), "--splits", "train=0.75", "val=0.25", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert f"train: {tmp_path / 's' / 'train'}" in out
    assert LeRobotDataset(tmp_path / "s" / "val").num_frames == 6
    assert main(["modify-tasks", str(src), "--replace", "task 1", "place", "--episode-task", "0", "first",
                 "--out", str(tmp_path / "t")]) == 0
    assert "task 1: place" in capsys.readouterr().out
    assert main(["split", str(src), "--splits", "train:0.8", "--out", str(tmp_path / "bad")]) == 1
    assert "write NAME=0.8 or NAME=0-39" in capsys.readouterr().err


def _kill_when(pattern: str, parent: Path, proc: subprocess.Popen, timeout: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = list(parent.glob(pattern))
        if hits:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return hits[0]
        if proc.poll() is not None:
            pytest.fail(f"the edit finished before it could be killed: {proc.stderr.read()}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("the edit never started building")


@pytest.mark.parametrize("in_place", [True, False])
def test_edit_killed_midway_leaves_the_source_intact(make_dataset, tmp_path, in_place):
    src = make_dataset([30] * 8)
    before = _digest(src)
    frames = LeRobotDataset(src).episode_frames(3, "observation.images.top")
    out = [] if in_place else ["--out", str(tmp_path / "out")]
    proc = subprocess.Popen([sys.executable, "-m", "apprentice.dataset.cli", "reencode-videos", str(src),
                             "--vcodec", "h264", *(["--in-place"] if in_place else []), *out],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # Killed once the build beside the destination is encoding its videos (half-written files there).
    building = _kill_when(f".{'ds' if in_place else 'out'}.edit-*/.staging/*.mp4", tmp_path, proc)
    assert building.exists()
    assert _digest(src) == before
    verify(src)
    assert np.array_equal(LeRobotDataset(src).episode_frames(3, "observation.images.top"), frames)
    assert not (tmp_path / "out").exists()
    # The next edit of the same destination clears what the killed one left.
    edit.delete_episodes(src, [0], **({"in_place": True} if in_place else {"out": tmp_path / "out"}))
    assert not list(tmp_path.glob(".*.edit-*"))


def test_in_place_without_renameat2_uses_two_renames(make_dataset, monkeypatch):
    from apprentice.dataset import output

    src = make_dataset([3, 4])
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    edit.modify_tasks(src, new_task="same", in_place=True)
    verify(src)
    assert LeRobotDataset(src).meta.tasks == ["same"]
    assert sorted(p.name for p in src.parent.iterdir()) == ["ds"]
