"""The frame cache gives exactly what LeRobotDataset gives per sample (windows, padding, pixels)."""

from __future__ import annotations

import pytest
import torch

from apprentice.dataset import LeRobotDataset
from apprentice.train import TrainError
from apprentice.train.data import FrameCache, SampleOrder, to_device

KEYS = ["observation.state", "action"]
IMG = "observation.images.top"


@pytest.mark.parametrize("obs_deltas, action_deltas", [(None, list(range(5))), ([-1, 0], list(range(-1, 7)))])
def test_cache_matches_dataset_getitem(tiny_dataset, obs_deltas, action_deltas):
    deltas = {"action": action_deltas}
    if obs_deltas:
        deltas |= {k: obs_deltas for k in ("observation.state", IMG)}
    cache = FrameCache(LeRobotDataset(tiny_dataset), KEYS, [IMG], deltas)
    ref = LeRobotDataset(tiny_dataset, delta_timestamps={k: [d / 30 for d in v] for k, v in deltas.items()})
    rows = [0, 1, 22, 23, 24, 40, 71]  # episode starts/ends: padding on both sides
    batch = to_device(cache.gather(torch.tensor(rows)), torch.device("cpu"), [IMG])
    for i, row in enumerate(rows):
        item = ref[row]
        for key in [*KEYS, IMG]:
            torch.testing.assert_close(batch[key][i], item[key], atol=1e-6, rtol=0)
            if f"{key}_is_pad" in item:
                assert torch.equal(batch[f"{key}_is_pad"][i], item[f"{key}_is_pad"]), (key, row)


def test_drop_last_frames_and_episode_selection(tiny_dataset):
    ds = LeRobotDataset(tiny_dataset, episodes=[0, 2])
    cache = FrameCache(ds, KEYS, [], {"action": [0, 1]}, drop_n_last_frames=4)
    assert len(cache) == 2 * (24 - 4)
    assert torch.equal(cache.columns["action"], torch.from_numpy(ds.column("action")))


def test_sample_order_is_resumable_and_sharded():
    order = SampleOrder(50, batch_size=4, seed=3)
    first = order.batches(0)
    stream = [next(first) for _ in range(30)]  # crosses epoch boundaries (12 batches per epoch)
    resumed = order.batches(17)
    assert all(torch.equal(next(resumed), stream[i]) for i in range(17, 30))
    ranks = [SampleOrder(50, 4, seed=3, rank=r, world_size=2).batches(0) for r in range(2)]
    a, b = (torch.cat([next(it) for _ in range(6)]) for it in ranks)
    assert not set(a.tolist()) & set(b.tolist())  # DDP ranks see disjoint samples within an epoch


def test_batch_larger_than_dataset_is_an_error():
    with pytest.raises(TrainError, match="--batch_size=64"):
        SampleOrder(10, batch_size=64, seed=0)
