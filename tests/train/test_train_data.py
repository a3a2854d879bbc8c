"""The frame cache gives exactly what LeRobotDataset gives per sample (windows, padding, pixels)."""

from __future__ import annotations

import pytest
import torch

from apprentice.dataset import LeRobotDataset
from apprentice.train import TrainError
from apprentice.train.data import FrameCache, SampleOrder, StreamingBatches, to_device

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


def test_cameras_stored_as_images_train_too(tiny_dataset, tmp_path):
    """LeRobot datasets may store a camera as an `image` column (PNG per row) instead of a video."""
    import io
    import json
    import shutil

    import av
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from train_helpers import policy_flags

    from apprentice.train.cli import main

    key, root = "observation.images.top", tmp_path / "images"
    source = LeRobotDataset(tiny_dataset)
    frames = np.concatenate([source.episode_frames(e, key) for e in source.episodes])
    shutil.copytree(tiny_dataset, root)
    shutil.rmtree(root / "videos")
    info = json.loads((root / "meta/info.json").read_text())
    info["features"][key]["dtype"] = "image"
    info["features"][key].pop("info", None)
    (root / "meta/info.json").write_text(json.dumps(info))

    def png(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="image2pipe") as container:
            stream = container.add_stream("png")
            stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
            for packet in [*stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")), *stream.encode()]:
                container.mux(packet)
        return buffer.getvalue()

    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for path in sorted((root / "data").rglob("*.parquet")):
        table = pq.read_table(path)
        cells = [{"bytes": png(frames[i]), "path": None} for i in table.column("index").to_numpy()]
        pq.write_table(table.append_column(key, pa.array(cells, type=struct)), path)

    cache = FrameCache(LeRobotDataset(root), [], [key], {}, 0, "cpu")
    assert torch.equal(cache.frames[key], torch.from_numpy(frames).permute(0, 3, 1, 2))
    out = tmp_path / "run"
    flags = [*policy_flags("act"), f"--dataset.root={root}", f"--output_dir={out}", "--batch_size=4", "--steps=1"]
    assert main([*flags, "--policy.device=cpu"]) == 0
    assert (out / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").is_file()


def test_streaming_samples_the_same_frames_as_the_cache(tiny_dataset):
    """--dataset.streaming=true leaves out each episode's last drop_n_last_frames, as the cache path does."""
    ds = LeRobotDataset(tiny_dataset)
    cache = FrameCache(ds, ["action"], [], {}, drop_n_last_frames=3)
    streaming = StreamingBatches(ds, batch_size=4, num_workers=0, seed=0, drop_n_last_frames=3)
    assert len(streaming.sampler) == len(cache.sample_rows) == ds.num_frames - 3 * ds.num_episodes
    assert sorted(streaming.sampler.dataset.indices) == sorted(cache.sample_rows.tolist())
    assert len(StreamingBatches(ds, batch_size=4, num_workers=0, seed=0).sampler) == ds.num_frames
