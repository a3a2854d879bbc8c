"""Crash safety with a real SIGKILL of a writer subprocess, then recovery by repair and DatasetWriter.open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from dataset_helpers import frame_value, write_episodes

from apprentice.dataset import DatasetError, DatasetWriter, LeRobotDataset
from apprentice.dataset.recovery import repair
from apprentice.dataset.verify import verify

TESTS_DIR = Path(__file__).parent
SRC_DIR = TESTS_DIR.parents[1] / "src"

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    sys.path[:0] = [{tests!r}, {src!r}]
    from dataset_helpers import FEATURES, frame_value, write_episodes
    from apprentice.dataset import DatasetWriter
    from apprentice.dataset import writer as writer_module

    mode = sys.argv[2]
    if mode.startswith("kill_at_"):
        # Die by a real SIGKILL at the worst moment of the 3rd save: video and data are written,
        # the episode row (the commit) is not — or, for "after_commit", info/stats are not.
        step = mode[len("kill_at_"):]
        real = getattr(writer_module.DatasetWriter, "_commit_row")
        def dying_commit(self, row):
            if row["episode_index"] == 2:
                if step == "after_commit":
                    real(self, row)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, row)
        writer_module.DatasetWriter._commit_row = dying_commit

    w = DatasetWriter.create(sys.argv[1], features=FEATURES, fps=30, data_files_size_in_mb=1)
    write_episodes(w, [10, 8])
    print("saved", flush=True)
    for i in range(10_000):  # third episode: recorded until killed
        w.add_frame(frame_value(2, i))
        if i == 12:
            if mode == "mid_episode":
                print("recording", flush=True)
                time.sleep(60)
            w.save_episode(task="task 0")
""")


def run_child_until_killed(root: Path, mode: str) -> None:
    script = root.parent / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS_DIR), src=str(SRC_DIR)))
    proc = subprocess.Popen([sys.executable, str(script), str(root), mode], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saved"
        if mode == "mid_episode":
            assert proc.stdout.readline().strip() == "recording"
            os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_first_two_episodes(ds: LeRobotDataset) -> None:
    assert [ep["length"] for ep in ds.meta.episodes[:2]] == [10, 8]
    for i, (e, f) in enumerate([(0, j) for j in range(10)] + [(1, j) for j in range(8)]):
        np.testing.assert_array_equal(ds[i]["observation.state"].numpy(), frame_value(e, f)["observation.state"])
    frames = ds.episode_frames(1, "observation.images.top")
    assert np.abs(frames[:, 24, 40, 1].astype(int) - 60).max() <= 6


@pytest.mark.parametrize("mode", ["mid_episode", "kill_at_before_commit", "kill_at_after_commit"])
def test_sigkill_leaves_a_loadable_dataset_and_recovers(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "ds"
    run_child_until_killed(root, mode)
    committed = 3 if mode == "kill_at_after_commit" else 2

    # Loads as is, before any repair: completed episodes intact, the interrupted one absent.
    ds = LeRobotDataset(root)
    assert ds.num_episodes == committed
    check_first_two_episodes(ds)

    actions = repair(root)
    assert actions  # something was left behind in every mode
    assert repair(root) == []  # idempotent
    assert verify(root)["episodes"] == committed

    # Recording continues where it stopped; the new episode's frames decode at the right timestamps.
    with DatasetWriter.open(root) as w:
        write_episodes(w, [7], first_episode=committed)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == committed + 1 and verify(root)["frames"] == len(ds)
    check_first_two_episodes(ds)
    last = ds.meta.episodes[-1]
    frames = ds.episode_frames(committed, "observation.images.top")
    assert np.abs(frames[:, 24, 40, 0].astype(int) - [i * 9 for i in range(7)]).max() <= 6
    assert np.abs(frames[:, 24, 40, 1].astype(int) - (committed * 60) % 250).max() <= 6
    assert last["dataset_to_index"] == len(ds)


def test_open_recovers_without_explicit_repair(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    run_child_until_killed(root, "kill_at_before_commit")
    with DatasetWriter.open(root) as w:
        assert w.num_episodes == 2
        write_episodes(w, [5], first_episode=2)
    assert verify(root)["episodes"] == 3


def test_rows_of_an_uncommitted_episode_fail_verify_until_repaired(tmp_path: Path) -> None:
    """A numeric-only dataset killed between writing the data rows and committing meta/episodes: lerobot
    would load those rows, so verify must name them (and push refuses), and repair removes them."""
    root = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from apprentice.dataset import DatasetWriter
        from apprentice.dataset import writer as W
        features = {{"observation.state": {{"dtype": "float32", "shape": [6], "names": None}},
                     "action": {{"dtype": "float32", "shape": [6], "names": None}}}}
        w = DatasetWriter.create({str(root)!r}, features=features, fps=30)
        def record(length):
            for i in range(length):
                w.add_frame({{"observation.state": np.full(6, i, np.float32), "action": np.full(6, i, np.float32)}})
            w.save_episode(task="a")
        record(10)
        record(12)
        W.DatasetWriter._commit_row = lambda self, row: os.kill(os.getpid(), signal.SIGKILL)
        record(7)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    with pytest.raises(DatasetError, match=r"7 rows of episode\(s\) \[2\] that meta/episodes does not list"):
        verify(root)
    assert LeRobotDataset(root).num_episodes == 2  # our reader only reads committed episodes meanwhile
    from apprentice.dataset.hub import push

    with pytest.raises(DatasetError, match="does not list"):
        push(root, "someone/dataset")  # refused before any request: nothing to reach here
    repair(root)
    assert verify(root)["frames"] == 22
