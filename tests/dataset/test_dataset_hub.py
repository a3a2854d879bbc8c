"""push / pull / streaming up to the network boundary: huggingface_hub against a loopback Hub (HF_ENDPOINT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_fake_hub import FakeHub

from apprentice.dataset import DatasetError, LeRobotDataset, StreamingLeRobotDataset
from apprentice.dataset.cli import main
from apprentice.dataset.hub import pull, push

REPO = "someone/reach_demo"


def test_push_uploads_every_file_and_tags_v30(make_dataset, hub: FakeHub) -> None:
    root = make_dataset([5, 4])
    url = push(root, REPO)
    assert url.startswith(hub.url)
    tagged = hub.refs[REPO]["v3.0"]
    assert tagged == hub.refs[REPO]["main"]
    files = hub.commits[tagged]
    local = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert sorted(files) == sorted([*local, "README.md"])
    assert files["meta/info.json"] == (root / "meta/info.json").read_bytes()
    assert b"LeRobot" in files["README.md"]
    methods = [(m, p) for m, p in hub.requests]
    assert ("POST", "/api/repos/create") in methods
    assert ("POST", f"/api/datasets/{REPO}/commit/main") in methods
    assert ("POST", f"/api/datasets/{REPO}/tag/{tagged}") in methods

    # A second push moves the tag to the new commit, as lerobot does.
    (root / "README.md").write_text("my card\n")
    push(root, REPO)
    assert hub.refs[REPO]["v3.0"] == hub.refs[REPO]["main"] != tagged
    assert ("DELETE", f"/api/datasets/{REPO}/tag/v3.0") in hub.requests


def test_pull_downloads_the_v30_revision(make_dataset, hub: FakeHub, tmp_path: Path) -> None:
    root = make_dataset([6, 3])
    push(root, REPO)
    out = pull(REPO, root=tmp_path / "pulled")
    assert any(p == f"/api/datasets/{REPO}/revision/v3.0" for _, p in hub.requests)
    ds, original = LeRobotDataset(out), LeRobotDataset(root)
    assert len(ds) == 9
    for i in (0, 5, 8):
        assert torch.equal(ds[i]["observation.images.top"], original[i]["observation.images.top"])
    # Reader by repo id: pulled into $HF_LEROBOT_HOME-like cache first.
    by_id = LeRobotDataset(REPO)
    assert len(by_id) == 9 and Path(by_id.store.root).is_relative_to(tmp_path / "hf_home")


def test_pull_without_v30_tag_is_a_clear_error(make_dataset, hub: FakeHub, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    push(make_dataset([3]), REPO)
    del hub.refs[REPO]["v3.0"]
    with pytest.raises(DatasetError, match=r"v3\.0"):
        pull(REPO, root=tmp_path / "x")
    assert main(["pull", "nobody/missing", "--root", str(tmp_path / "y")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nobody/missing" in err


def test_streaming_gives_the_same_samples_without_downloading(make_dataset, hub: FakeHub, tmp_path: Path) -> None:
    root = make_dataset([7, 5, 6])
    push(root, REPO)
    deltas = {"action": [0.0, 1 / 30, 2 / 30]}
    stream = StreamingLeRobotDataset(REPO, delta_timestamps=deltas)
    local = LeRobotDataset(root, delta_timestamps=deltas)
    samples = list(stream)
    assert len(samples) == len(local) == 18
    for i, sample in enumerate(samples):
        want = local[i]
        assert sample["task"] == want["task"]
        for key in ("observation.state", "action", "action_is_pad", "index", "observation.images.top"):
            assert torch.equal(sample[key], want[key]), (i, key)
    # Video bytes came by HTTP range reads; nothing was written to the local cache.
    assert not any((tmp_path / "hf_home").rglob("*.mp4"))
    shuffled = [int(s["episode_index"]) for s in StreamingLeRobotDataset(REPO, shuffle=True, seed=1)]
    assert sorted(shuffled) == sorted(int(s["episode_index"]) for s in samples)
    assert np.all(np.diff([int(s["frame_index"]) for s in samples[:7]]) == 1)
