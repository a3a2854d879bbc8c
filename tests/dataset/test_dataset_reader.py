"""LeRobotDataset on the dataset real lerobot 0.4.4 wrote, delta_timestamps windows, DataLoader workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from dataset_helpers import REF_ROOT, frame_value

from apprentice.dataset import DatasetError, LeRobotDataset

EXPECTED = json.loads((REF_ROOT.parent / "lerobot_ref_expected.json").read_text())


def test_reference_frames_match_what_lerobot_decoded() -> None:
    ds = LeRobotDataset(REF_ROOT)
    assert (len(ds), ds.num_episodes, ds.fps) == (135, 3, 30)
    assert ds.camera_keys == ["observation.images.top"]
    for index, want in EXPECTED["frames"].items():
        item = ds[int(index)]
        assert int(item["episode_index"]) == want["episode_index"]
        assert int(item["frame_index"]) == want["frame_index"]
        assert float(item["timestamp"]) == pytest.approx(want["timestamp"], abs=1e-7)
        assert item["task"] == want["task"]
        np.testing.assert_allclose(item["observation.state"].numpy(), want["observation.state"], atol=1e-5)
        np.testing.assert_allclose(item["action"].numpy(), want["action"], atol=1e-5)
        image = item["observation.images.top"]
        assert image.shape == (3, 48, 64) and image.dtype == torch.float32
        np.testing.assert_allclose(image.mean(dim=(1, 2)).numpy(), want["image_channel_means"], atol=1.5e-4)
        assert item["index"].ndim == 0 and item["index"].dtype == torch.int64


def test_reference_window_with_padding() -> None:
    deltas = [k / 30 for k in range(-2, 8)]
    ds = LeRobotDataset(REF_ROOT, delta_timestamps={"action": deltas})
    item = ds[44]
    want = EXPECTED["window_at_44"]
    assert item["action"].shape == (10, 6)
    assert item["action_is_pad"].tolist() == want["action_is_pad"]
    np.testing.assert_allclose(item["action"][:, 0].numpy(), want["action_first_col"], atol=1e-5)


def test_reference_metadata() -> None:
    ds = LeRobotDataset(REF_ROOT, episodes=[1, 2])
    assert ds.meta.tasks == ["pick up the red cube", "place the cube in the bin"]
    assert len(ds) == 90 and int(ds[0]["index"]) == 45
    assert ds.meta.stats["observation.images.top"]["mean"].shape == (3, 1, 1)
    assert ds.meta.episodes[1]["videos/observation.images.top/from_timestamp"] == 1.5
    assert ds.column("action").shape == (90, 6)
    frames = ds.episode_frames(1, "observation.images.top")
    assert frames.shape == (30, 48, 64, 3)
    np.testing.assert_allclose(frames[29].mean(axis=(0, 1)) / 255, EXPECTED["frames"]["74"]["image_channel_means"],
                               atol=1.5e-4)


def test_windows_clamp_and_pad_at_both_episode_edges(make_dataset) -> None:
    root = make_dataset([6, 5])
    deltas = {"observation.state": [-2 / 30, -1 / 30, 0.0], "action": [0.0, 1 / 30, 2 / 30],
              "observation.images.top": [-1 / 30, 0.0]}
    ds = LeRobotDataset(root, delta_timestamps=deltas)
    first = ds[6]  # first frame of episode 1: looking back must not leak episode 0
    assert first["observation.state_is_pad"].tolist() == [True, True, False]
    np.testing.assert_array_equal(first["observation.state"].numpy(),
                                  np.stack([frame_value(1, 0)["observation.state"]] * 3))
    assert first["observation.images.top"].shape == (2, 3, 32, 48)
    assert first["observation.images.top_is_pad"].tolist() == [True, False]
    last = ds[5]  # last frame of episode 0: looking ahead must not leak episode 1
    assert last["action_is_pad"].tolist() == [False, True, True]
    np.testing.assert_array_equal(last["action"].numpy(), np.stack([frame_value(0, 5)["action"]] * 3))
    middle = ds[8]
    assert not middle["action_is_pad"].any()
    np.testing.assert_array_equal(middle["action"][:, 0].numpy(), [102.5, 103.5, 104.5])


def test_bad_delta_timestamps_are_rejected(make_dataset) -> None:
    root = make_dataset([3])
    with pytest.raises(DatasetError, match="multiples of 1/fps"):
        LeRobotDataset(root, delta_timestamps={"action": [0.01]})
    with pytest.raises(DatasetError, match="not a feature"):
        LeRobotDataset(root, delta_timestamps={"nope": [0.0]})
    with pytest.raises(DatasetError, match="out of range"):
        LeRobotDataset(root, episodes=[3])


def test_dataloader_with_two_workers_matches_single_process(make_dataset) -> None:
    root = make_dataset([8, 8])
    ds = LeRobotDataset(root, delta_timestamps={"action": [i / 30 for i in range(4)]})
    ds[0]  # open a container in the parent: workers must not reuse it across the fork
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == 16
    images = torch.cat([b["observation.images.top"] for b in batches])
    single = torch.stack([ds[i]["observation.images.top"] for i in range(16)])
    assert torch.equal(images, single)
    assert batches[0]["action"].shape == (4, 4, 6)
