"""TD-MPC policy: config checks, MPPI bounds and determinism, save/load, lerobot-layout checkpoints (actions
equal to what lerobot 0.4.4 computed for the same weights, observations and seed), loss inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tdmpc_helpers import TINY

from apprentice.policies import PolicyError, load_policy, make_config, make_policy, save_policy
from apprentice.policies.tdmpc.planning import plan

REFERENCE = Path(__file__).parent / "data" / "tdmpc_lerobot_reference.json"
FEATURES = {
    "input_features": {
        "observation.state": {"type": "STATE", "shape": [3]},
        "observation.environment_state": {"type": "ENV", "shape": [3]},
    },
    "output_features": {"action": {"type": "ACTION", "shape": [2]}},
}
LOW, HIGH = torch.tensor([-0.5, 2.0]), torch.tensor([0.5, 6.0])


def _policy(**fields: object):
    torch.manual_seed(0)
    return make_policy(make_config("tdmpc", **FEATURES, **{**TINY, **fields}), {"action": {"min": LOW, "max": HIGH}})


def _obs(batch: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {
        "observation.state": torch.randn(batch, 3, generator=gen),
        "observation.environment_state": torch.randn(batch, 3, generator=gen),
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n_elites": 100}, "n_elites=100"),
        ({"n_gaussian_samples": 0}, "n_gaussian_samples"),
        ({"normalization_mapping": {"ACTION": "MEAN_STD"}}, "MIN_MAX"),
        ({"n_action_steps": 2}, "n_action_repeats=1"),
        ({"n_action_steps": 2, "n_action_repeats": 1, "use_mpc": False}, "use_mpc"),
        ({"n_obs_steps": 2}, "n_obs_steps"),
    ],
)
def test_bad_config_is_a_clear_error(fields, message):
    with pytest.raises(PolicyError, match=message):
        make_config("tdmpc", **{**TINY, **fields})


def test_config_defaults_are_lerobots():
    reference = json.loads(REFERENCE.read_text())["files"]["config.json"]
    ours = make_config("tdmpc").to_dict()
    assert list(ours) == list(reference)  # same fields, same order
    # Shrunk in the reference; push_to_hub: lerobot's own default is true, lerobot-train's runs set it false.
    shrunk = {"input_features", "output_features", *TINY, "image_encoder_hidden_dim", "device", "push_to_hub"}
    assert {k: v for k, v in ours.items() if k not in shrunk} == {k: v for k, v in reference.items() if k not in shrunk}


def test_mppi_actions_stay_in_bounds_and_follow_the_seed():
    policy = _policy(max_std=2.0)
    z = policy.model.encode(_obs())
    normalized, mean = plan(policy.model, policy.config, z, None, torch.Generator().manual_seed(3))
    assert normalized.shape == (TINY["horizon"], 2, 2) and mean.shape == normalized.shape
    assert torch.isfinite(normalized).all()
    chunk = policy.predict_action_chunk(_obs(), generator=torch.Generator().manual_seed(3))
    assert chunk.shape == (2, TINY["horizon"], 2)
    assert ((chunk >= LOW - 1e-5) & (chunk <= HIGH + 1e-5)).all()  # [-1, 1] unnormalized into [min, max]
    policy.reset()
    again = policy.predict_action_chunk(_obs(), generator=torch.Generator().manual_seed(3))
    other = policy.predict_action_chunk(_obs(), generator=torch.Generator().manual_seed(4))
    assert torch.equal(chunk, again) and not torch.equal(chunk, other)


def test_action_repeats_and_pi_only():
    policy = _policy(n_action_repeats=2)
    first = policy.select_action(_obs())
    assert torch.equal(policy.select_action(_obs()), first)  # the planned first action, twice
    policy.config.use_mpc = False
    policy.reset()
    pi = policy.predict_action_chunk(_obs())
    assert pi.shape == (2, 1, 2) and torch.equal(pi, policy.predict_action_chunk(_obs()))  # π alone: no noise


def test_save_load_gives_identical_actions(tmp_path):
    policy = _policy()
    for p in policy.parameters():  # move off the init (zeroed Q/reward heads) so planning has values to rank
        p.data.add_(torch.randn_like(p) * 0.1)
    save_policy(policy, tmp_path)
    loaded = load_policy(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), loaded.state_dict().values()))
    acts = []
    for p in (policy, loaded):
        p.reset()
        torch.manual_seed(11)
        acts.append(torch.stack([p.select_action(_obs()) for _ in range(4)]))
    assert torch.equal(acts[0], acts[1])


def _seeded_weights(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    # The same weights benchmarks/tdmpc_lerobot_compat.py gave lerobot: sorted keys, one seeded generator.
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(shapes[k], generator=gen) * 0.3 for k in sorted(shapes)}


def _write_lerobot_checkpoint(root: Path) -> dict:
    ref = json.loads(REFERENCE.read_text())
    root.mkdir(parents=True)
    for name, content in ref["files"].items():
        (root / name).write_text(json.dumps(content, indent=4))
    save_file(_seeded_weights(ref["model_keys"]), str(root / "model.safetensors"))
    stats = {f"{key}.{stat}": torch.tensor(v) for key, per in ref["stats"].items() for stat, v in per.items()}
    for name, keys in ref["stats_files"].items():
        assert sorted(stats) == keys
        save_file(stats, str(root / name))
    return ref


def test_lerobot_checkpoint_loads_and_acts_as_lerobot(tmp_path):
    ref = _write_lerobot_checkpoint(tmp_path / "pretrained_model")
    policy = load_policy(tmp_path / "pretrained_model")
    assert {k: list(v.shape) for k, v in policy.state_dict().items()} == ref["model_keys"]
    gen = torch.Generator().manual_seed(3)
    obs = {
        "observation.image": torch.rand(2, 3, 40, 40, generator=gen),
        "observation.environment_state": torch.randn(2, 3, generator=gen),
        "observation.state": torch.randn(2, 4, generator=gen),
    }
    for mode, use_mpc in (("mpc", True), ("pi", False)):
        policy.config.use_mpc = use_mpc
        policy.reset()
        torch.manual_seed(ref["seed"])
        ours = torch.stack([policy.select_action(obs) for _ in range(ref["n_steps"])])
        torch.testing.assert_close(ours, torch.tensor(ref["actions"][mode]), rtol=0, atol=1e-6)
    # Ours saves in the same layout: same files, same processor configs.
    save_policy(policy, tmp_path / "ours")
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        assert json.loads((tmp_path / "ours" / name).read_text()) == ref["files"][name]


def test_forward_without_reward_names_the_feature():
    policy = _policy()
    b, h = 2, TINY["horizon"]
    batch = {
        "observation.state": torch.randn(b, h + 1, 3),
        "observation.environment_state": torch.randn(b, h + 1, 3),
        "action": torch.rand(b, h, 2),
    }
    with pytest.raises(PolicyError, match=r"next\.reward"):
        policy(batch)
    loss, info = policy({**batch, "next.reward": torch.rand(b, h)})
    loss.backward()
    assert torch.isfinite(loss) and set(info) >= {"consistency_loss", "reward_loss", "Q_value_loss", "pi_loss"}


def test_padding_masks_exclude_frames_past_the_episode_end():
    policy = _policy()
    b, h = 2, TINY["horizon"]
    batch = {
        "observation.state": torch.randn(b, h + 1, 3),
        "observation.environment_state": torch.randn(b, h + 1, 3),
        "action": torch.rand(b, h, 2),
        "next.reward": torch.rand(b, h),
        "observation.state_is_pad": torch.zeros(b, h + 1, dtype=torch.bool),
        "action_is_pad": torch.zeros(b, h, dtype=torch.bool),
        "next.reward_is_pad": torch.zeros(b, h, dtype=torch.bool),
    }
    batch["observation.state_is_pad"][:, 1:] = True  # the episode ends after the first frame
    batch["action_is_pad"][:, 1:] = batch["next.reward_is_pad"][:, 1:] = True
    changed = {**batch, "next.reward": batch["next.reward"].clone(), "action": batch["action"].clone()}
    changed["next.reward"][:, 1:] += 100.0  # padded rewards/actions must not matter
    changed["action"][:, 1:] = -changed["action"][:, 1:]
    np.random.seed(0)  # the two random Q members of the targets
    a, _ = policy(batch)
    np.random.seed(0)
    b_, _ = policy(changed)
    assert torch.equal(a, b_)
    policy.model_target.load_state_dict(policy.model.state_dict())
    before = [p.clone() for p in policy.model_target.parameters()]
    for p in policy.model.parameters():
        p.data.add_(1.0)
    policy.update()  # EMA: target moves 1 - momentum of the way
    moved = [(t - b0).abs().max() for t, b0 in zip(policy.model_target.parameters(), before)]
    assert all(m == pytest.approx(1 - policy.config.target_model_momentum, abs=1e-6) for m in moved)
