"""LeRobot compatibility: parameter names/shapes, config.json and processor files follow the real
lerobot 0.4.4 run in shared/specs; a checkpoint built in LeRobot's exact layout loads and acts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from apprentice.policies import PolicyError, load_policy, make_config, make_policy, save_policy

SPECS = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "lerobot-checkpoints"
if not SPECS.is_dir():
    SPECS = Path("/work/shared/specs/lerobot-checkpoints")
pytestmark = pytest.mark.skipif(not SPECS.is_dir(), reason="shared/specs/lerobot-checkpoints not available")

DTYPES = {"F32": torch.float32}


def _keys(path: Path) -> dict[str, tuple[str, list[int]]]:
    out = {}
    for line in path.read_text().splitlines():
        name, dtype, shape = line.split("\t")
        out[name] = (dtype, json.loads(shape))
    return out


def _spec_config(kind: str) -> dict:
    cfg = json.loads((SPECS / kind / "config.json").read_text())
    cfg.pop("type")
    return cfg


def _stats_like_spec(kind: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    out = {}
    for name, (_, shape) in _keys(SPECS / kind / "policy_preprocessor_step_3_normalizer_processor.keys.txt").items():
        stat = name.rsplit(".", 1)[1]
        value = torch.rand(shape, generator=gen)
        if stat in ("std", "max", "q99", "q90"):
            value = value + 1.0
        out[name] = value
    return out


def _stats_nested(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in flat.items():
        key, stat = name.rsplit(".", 1)
        nested.setdefault(key, {})[stat] = value
    return nested


@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_state_dict_matches_lerobot_keys_and_shapes(kind):
    config = make_config(kind, **_spec_config(kind))
    with torch.device("meta"):  # full LeRobot default size, without allocating it
        policy = make_policy(config, _stats_nested(_stats_like_spec(kind)))
    ours = {k: [list(v.shape)] for k, v in policy.state_dict().items()}
    spec = {k: [shape] for k, (_, shape) in _keys(SPECS / kind / "model.keys.txt").items()}
    assert ours == spec


@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_optimizer_groups_match_lerobot(kind):
    with torch.device("meta"):
        policy = make_policy(make_config(kind, **_spec_config(kind)), _stats_nested(_stats_like_spec(kind)))
    groups = json.loads((SPECS / kind / "optimizer_param_groups.json").read_text())
    opt = policy.make_optimizer()
    assert [len(g["params"]) for g in opt.param_groups] == [len(g["params"]) for g in groups]
    for ours, theirs in zip(opt.param_groups, groups):
        assert ours["weight_decay"] == theirs["weight_decay"]
        assert list(ours["betas"]) == theirs["betas"]
        assert ours["eps"] == theirs["eps"]
        assert ours["decoupled_weight_decay"] == theirs["decoupled_weight_decay"]  # AdamW vs Adam


@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_saved_files_match_lerobot_layout(kind, tmp_path):
    small = {"act": {"dim_model": 16, "dim_feedforward": 32, "n_heads": 2},
             "diffusion": {"down_dims": [16, 32, 64], "diffusion_step_embed_dim": 8}}[kind]
    policy = make_policy(make_config(kind, **{**_spec_config(kind), **small}), _stats_nested(_stats_like_spec(kind)))
    policy.config.device = "cpu"
    save_policy(policy, tmp_path)
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads((SPECS / kind / name).read_text()), name
    ours = json.loads((tmp_path / "config.json").read_text())
    spec = json.loads((SPECS / kind / "config.json").read_text())
    assert list(ours) == list(spec)  # same fields, same order
    assert {k: v for k, v in ours.items() if k not in small} == {k: v for k, v in spec.items() if k not in small}
    listed = {line.split("/")[-1] for line in (SPECS / kind / "files.txt").read_text().split() if "pretrained" in line}
    assert listed - {"train_config.json"} <= {p.name for p in tmp_path.iterdir()}


# Diffusion's default UNet has ~250M parameters (1 GB); for CI its checkpoint is built with every
# UNet width divided by 8 — the spec's key names and layout, shapes scaled consistently.
SHRINK = {512: 64, 1024: 128, 2048: 256, 4096: 512}


def _build_lerobot_checkpoint(kind: str, root: Path) -> dict[str, torch.Tensor]:
    """A pretrained_model/ dir written the way lerobot-train writes it: spec key names, random weights."""
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    weights = {}
    for name, (dtype, shape) in _keys(SPECS / kind / "model.keys.txt").items():
        if kind == "diffusion" and name.startswith("diffusion.unet.") and "step_encoder" not in name:
            shape = [SHRINK.get(d, d) for d in shape]
        value = torch.randn(shape, generator=gen, dtype=DTYPES[dtype]) * 0.05
        if name.endswith("running_var"):
            value = value.abs() + 0.5
        weights[name] = value
    save_file(weights, str(root / "model.safetensors"))
    stats = _stats_like_spec(kind)
    save_file(stats, str(root / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    save_file(stats, str(root / "policy_postprocessor_step_0_unnormalizer_processor.safetensors"))
    for name in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json"):
        shutil.copy(SPECS / kind / name, root / name)
    if kind == "diffusion":
        config = json.loads((root / "config.json").read_text())
        config["down_dims"] = [SHRINK[d] for d in config["down_dims"]]
        (root / "config.json").write_text(json.dumps(config, indent=4))
    return weights


def _obs(kind: str, batch: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return {"observation.state": torch.randn(batch, 6, generator=gen),
            "observation.images.top": torch.rand(batch, 3, 48, 64, generator=gen)}


def test_lerobot_act_checkpoint_loads_and_predicts(tmp_path):
    weights = _build_lerobot_checkpoint("act", tmp_path / "pretrained_model")
    policy = load_policy(tmp_path / "pretrained_model")
    loaded = policy.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
    chunk = policy.predict_action_chunk(_obs("act"))
    assert chunk.shape == (2, 100, 6) and torch.isfinite(chunk).all()
    # Unnormalization uses the checkpoint's action stats (MEAN_STD): x * std + mean.
    mean = policy.normalizer.stats["action"]["mean"]
    std = policy.normalizer.stats["action"]["std"]
    normalized = policy.model(policy._prepare(_obs("act")))[0]
    torch.testing.assert_close(chunk, normalized * std + mean)
    # select_action pops the chunk step by step without recomputing.
    policy.reset()
    assert torch.equal(policy.select_action(_obs("act")), chunk[:, 0])
    assert torch.equal(policy.select_action(_obs("act")), chunk[:, 1])


def test_lerobot_diffusion_checkpoint_loads_and_predicts(tmp_path):
    weights = _build_lerobot_checkpoint("diffusion", tmp_path / "pretrained_model")
    policy = load_policy(tmp_path / "pretrained_model")
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in weights.items())
    assert policy.config.normalization_mapping == {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"}
    policy.diffusion.num_inference_steps = 2  # the full 100-step DDPM loop is too slow for CI on CPU
    chunk = policy.predict_action_chunk(_obs("diffusion"), generator=torch.Generator().manual_seed(0))
    again = policy.predict_action_chunk(_obs("diffusion"), generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (2, 8, 6) and torch.equal(chunk, again)
    lo, hi = policy.normalizer.stats["action"]["min"], policy.normalizer.stats["action"]["max"]
    assert ((chunk >= lo - 1e-5) & (chunk <= hi + 1e-5)).all()  # clip_sample keeps actions in [min, max]


def test_unknown_fields_from_newer_lerobot_are_ignored(tmp_path):
    _build_lerobot_checkpoint("act", tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["some_future_field"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert load_policy(tmp_path).config.chunk_size == 100


def test_mismatched_weights_name_the_keys(tmp_path):
    weights = _build_lerobot_checkpoint("act", tmp_path)
    weights.pop("model.action_head.bias")
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(PolicyError, match=re.escape("model.action_head.bias")):
        load_policy(tmp_path)


def test_corrupt_or_pickled_weights_are_refused(tmp_path):
    _build_lerobot_checkpoint("act", tmp_path)
    # A pickle renamed to .safetensors must never be unpickled.
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(PolicyError, match=re.escape("model.safetensors")):
        load_policy(tmp_path)


def test_missing_files_and_bad_type(tmp_path):
    with pytest.raises(PolicyError, match=re.escape("config.json")):
        load_policy(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"type": "nope"}))
    with pytest.raises(PolicyError, match="unknown policy type 'nope'"):
        load_policy(tmp_path)
