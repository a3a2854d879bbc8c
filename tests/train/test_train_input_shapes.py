"""`--policy.input_shapes.observation.images.<camera>=[3,H,W]`: frames resized once into the cache (and on the
per-sample path), the checkpoint's features record the size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import policy_flags

from apprentice.dataset import LeRobotDataset
from apprentice.policies import load_policy
from apprentice.policies.image_resize import resize_frames
from apprentice.train import TrainConfig, TrainError
from apprentice.train.cli import main
from apprentice.train.data import FrameCache, ResizedSamples, StreamingBatches

IMG = "observation.images.top"
FLAG = f"--policy.input_shapes.{IMG}"


def test_diffusion_trains_at_the_smaller_size_and_the_checkpoint_says_so(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    flags = [*policy_flags("diffusion"), f"--dataset.root={tiny_dataset}", f"--output_dir={out}", "--batch_size=4",
             "--steps=1", "--policy.device=cpu", f"{FLAG}=[3,24,32]"]
    assert main(flags) == 0
    model = out / "checkpoints" / "last" / "pretrained_model"
    saved = json.loads((model / "config.json").read_text())
    assert saved["input_features"][IMG]["shape"] == [3, 24, 32]
    assert json.loads((model / "train_config.json").read_text())["policy"]["input_features"][IMG]["shape"] == [
        3, 24, 32]
    policy = load_policy(model)
    frame = torch.rand(1, 2, 3, 24, 32)  # diffusion: n_obs_steps=2; its spatial softmax is built for 24x32
    state = torch.zeros(1, 2, 4)
    assert policy.predict_action_chunk({IMG: frame, "observation.state": state}).shape[-1] == 4


def test_cache_and_per_sample_path_resize_alike(tiny_dataset):
    ds = LeRobotDataset(tiny_dataset)
    shapes = {IMG: (3, 24, 32)}
    cache = FrameCache(ds, [], [IMG], {IMG: [-1, 0]}, image_shapes=shapes)
    native = np.concatenate([ds.episode_frames(e, IMG) for e in ds.episodes])
    assert torch.equal(cache.frames[IMG], resize_frames(torch.from_numpy(native).permute(0, 3, 1, 2), (24, 32)))
    windowed = LeRobotDataset(tiny_dataset, delta_timestamps={IMG: [-1 / 30, 0]})
    per_sample = ResizedSamples(windowed, shapes)
    rows = torch.tensor([0, 23, 24, 50])
    batch = cache.gather(rows)
    for i, row in enumerate(rows.tolist()):
        item = per_sample[row]
        assert item[IMG].shape == (2, 3, 24, 32)
        assert torch.equal(item[IMG], batch[IMG][i].float() / 255.0)
        assert torch.equal(item[f"{IMG}_is_pad"], batch[f"{IMG}_is_pad"][i])
    streaming = StreamingBatches(windowed, batch_size=4, num_workers=0, seed=0, image_shapes=shapes)
    assert streaming.next()[IMG].shape == (4, 2, 3, 24, 32)


@pytest.mark.parametrize("value, message", [
    ("[3,24]", r"expected \[C,H,W\] positive integers"),
    ("[1,24,32]", r"keep C=3"),
])
def test_bad_input_shapes_are_errors(tiny_dataset, tmp_path, value, message):
    flags = [*policy_flags("act"), f"--dataset.root={tiny_dataset}", f"--output_dir={tmp_path / 'r'}", "--steps=1",
             "--policy.device=cpu", f"{FLAG}={value}"]
    with pytest.raises(TrainError, match=message):
        from apprentice.train.loop import train

        train(TrainConfig.from_args(flags))


def test_input_shapes_for_an_unknown_camera_names_the_cameras(tiny_dataset, tmp_path: Path, capsys):
    flags = [*policy_flags("act"), f"--dataset.root={tiny_dataset}", f"--output_dir={tmp_path / 'r'}", "--steps=1",
             "--policy.device=cpu", "--policy.input_shapes.observation.images.wrist=[3,24,32]"]
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert "--policy.input_shapes.observation.images.wrist" in err and "cameras: ['observation.images.top']" in err


def test_data_flags_parse_and_validate():
    cfg = TrainConfig.from_args(["--policy.type=act", f"{FLAG}=[3,24,32]", "--cache_max_gb=1.5", "--cache_dir=/c"])
    assert cfg.policy_overrides["input_shapes"] == {IMG: [3, 24, 32]}
    assert (cfg.cache_max_gb, cfg.cache_dir) == (1.5, "/c")
    assert TrainConfig.from_dict(cfg.to_dict()).cache_max_gb == 1.5  # a resumed run keeps its bound
    with pytest.raises(TrainError, match="--cache_max_gb=-1"):
        TrainConfig.from_args(["--cache_max_gb=-1"])
    with pytest.raises(TrainError, match="--num_workers=-2"):
        TrainConfig.from_args(["--num_workers=-2"])
