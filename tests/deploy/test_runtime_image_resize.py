"""A checkpoint trained at a smaller `--policy.input_shapes` gets its camera frames resized at inference from
its own config, exactly as the training cache resized them (deploy/runtime.py + policies/image_resize.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from deploy_helpers import MS, FakeClock, write_tiny_act

from apprentice.contract import load_contract
from apprentice.deploy import DeployError
from apprentice.deploy.runtime import PolicyRuntime, RuntimeConfig
from apprentice.policies import load_policy
from apprentice.policies.image_resize import resize_frames
from apprentice.resources import config_path

IMG = "observation.images.top"


@pytest.fixture(scope="module")
def small_act(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sim_reach ACT as trained with --policy.input_shapes.observation.images.top=[3,48,64] (the contract's
    camera is 96x128): ACT's weights do not depend on the image size, its config records it."""
    model = write_tiny_act(tmp_path_factory.mktemp("small_act"))
    config = json.loads((model / "config.json").read_text())
    config["input_features"][IMG]["shape"] = [3, 48, 64]
    (model / "config.json").write_text(json.dumps(config))
    return model


def test_runtime_resizes_camera_frames_to_the_checkpoints_size(small_act):
    torch.set_num_threads(1)
    policy = load_policy(small_act)
    rt = PolicyRuntime(policy, load_contract(config_path("contracts", "sim_reach.yaml")), RuntimeConfig(),
                       clock=FakeClock())
    frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    sample = {"observation.state": np.zeros(6, np.float32), IMG: frame,
              "observation.environment_state": np.array([0.2, 0.0, 0.1], np.float32)}
    obs = rt.build_observation(sample)
    expected = resize_frames(torch.from_numpy(frame).permute(2, 0, 1).contiguous(), (48, 64)).float() / 255.0
    assert obs[IMG].shape == (1, 3, 48, 64) and torch.equal(obs[IMG][0], expected)
    rt.enable(True)
    for key, value in sample.items():
        rt.push(key, 990 * MS, value)
    outcome = rt.step(1000 * MS)
    assert outcome.reason == "ok" and outcome.command is not None and np.all(np.isfinite(outcome.command))
    rt.close()


def test_a_camera_of_another_aspect_ratio_is_refused_at_start(small_act, tmp_path):
    raw = yaml.safe_load(config_path("contracts", "sim_reach.yaml").read_text())
    next(o for o in raw["observations"] if o["key"] == IMG)["shape"] = [96, 96, 3]
    path = tmp_path / "square_camera.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DeployError, match=r"expects \(3, 48, 64\), the contract gives \(3, 96, 96\) \(another aspect"):
        PolicyRuntime(load_policy(small_act), load_contract(path), RuntimeConfig(), clock=FakeClock())
