"""A checkpoint in lerobot's layout loads: key names as lerobot 0.6.1's GaussianActorPolicy +
SACAlgorithm write them (listed here literally, read off a real lerobot 0.6.1 save_model), the shared
encoder stored once under `actor.encoder.*`; the 0.6 policy-only file and the 0.4 one with critics both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from apprentice.policies import load_policy, make_config, make_policy, save_policy

_MLP = ["net.0.bias", "net.0.weight", "net.1.bias", "net.1.weight", "net.3.bias", "net.3.weight",
        "net.4.bias", "net.4.weight"]
_ENC = [f"{m}.{i}.{p}" for m in ("env_encoder", "state_encoder") for i in (0, 1) for p in ("bias", "weight")]
LEROBOT_POLICY_KEYS = (
    [f"actor.encoder.{k}" for k in _ENC]
    + ["actor.mean_layer.bias", "actor.mean_layer.weight", "actor.std_layer.bias", "actor.std_layer.weight"]
    + [f"actor.network.{k}" for k in _MLP]
    + [f"discrete_critic.net.{k}" for k in _MLP]
    + ["discrete_critic.output_layer.bias", "discrete_critic.output_layer.weight"]
)
LEROBOT_ALGORITHM_KEYS = (
    [f"{e}.critics.{i}.{k}" for e in ("critic_ensemble", "critic_target") for i in (0, 1)
     for k in [f"net.{m}" for m in _MLP] + ["output_layer.bias", "output_layer.weight"]]
    + [f"discrete_critic_target.net.{k}" for k in _MLP]
    + ["discrete_critic_target.output_layer.bias", "discrete_critic_target.output_layer.weight", "log_alpha"]
)
FIELDS = {
    "input_features": {"observation.state": {"type": "STATE", "shape": [18]},
                       "observation.environment_state": {"type": "ENV", "shape": [3]}},
    "output_features": {"action": {"type": "ACTION", "shape": [3]}},
    "num_discrete_actions": 3, "latent_dim": 8,
    "actor_network_kwargs": {"hidden_dims": [16, 16], "activate_final": True},
    "discrete_critic_network_kwargs": {"hidden_dims": [16, 16], "activate_final": True, "final_activation": None},
}
STATS = {
    "observation.state": {"min": torch.zeros(18), "max": torch.ones(18)},
    "observation.environment_state": {"min": torch.zeros(3), "max": torch.ones(3)},
    "action": {"min": -torch.ones(3), "max": torch.ones(3)},
}


def lerobot_checkpoint(root: Path, policy_type: str, keys: list[str]) -> dict[str, torch.Tensor]:
    """pretrained_model/ as lerobot writes it: config.json (its field names), model.safetensors, stats."""
    template = make_policy(make_config("sac", **FIELDS), STATS)
    shapes = {k: v.shape for k, v in template.state_dict().items()}
    torch.manual_seed(1)
    weights = {k: torch.randn(shapes[k]) for k in keys}
    save_policy(template, root)  # the processor/stats files in lerobot's layout
    save_file(weights, str(root / "model.safetensors"))
    config = {"type": policy_type, **FIELDS, "device": "cpu", "storage_device": "cpu", "use_amp": False,
              "policy_kwargs": {"use_tanh_squash": True, "std_min": 1e-5, "std_max": 10.0, "init_final": 0.05},
              "online_steps": 1000000, "a_field_of_a_newer_lerobot": 1}
    (root / "config.json").write_text(json.dumps(config))
    return weights


@pytest.mark.parametrize("policy_type", ["gaussian_actor", "sac"])
def test_lerobot_layout_checkpoint_loads(tmp_path: Path, policy_type: str) -> None:
    keys = LEROBOT_POLICY_KEYS + (LEROBOT_ALGORITHM_KEYS if policy_type == "sac" else [])
    weights = lerobot_checkpoint(tmp_path, policy_type, keys)
    policy = load_policy(tmp_path)
    assert torch.equal(policy.actor.mean_layer.weight, weights["actor.mean_layer.weight"])
    # One encoder, shared by actor, critics and gripper head, from the single stored copy.
    enc = weights["actor.encoder.state_encoder.0.weight"]
    assert torch.equal(policy.critic_ensemble.encoder.state_encoder[0].weight, enc)
    assert torch.equal(policy.discrete_critic.encoder.state_encoder[0].weight, enc)
    assert torch.equal(policy.discrete_critic.output_layer.weight, weights["discrete_critic.output_layer.weight"])
    if policy_type == "sac":
        assert torch.equal(policy.critic_target.critics[1].output_layer.weight,
                           weights["critic_target.critics.1.output_layer.weight"])
    # Our own save writes exactly lerobot's names (policy + algorithm parts).
    assert set(policy.state_dict()) == set(LEROBOT_POLICY_KEYS + LEROBOT_ALGORITHM_KEYS)
    action = policy.select_action({"observation.state": torch.rand(2, 18),
                                   "observation.environment_state": torch.rand(2, 3)})
    assert action.shape == (2, 4) and set(action[:, 3].tolist()) <= {0.0, 1.0, 2.0}


def test_missing_actor_weights_is_a_clear_error(tmp_path: Path) -> None:
    from apprentice.policies import PolicyError

    lerobot_checkpoint(tmp_path, "gaussian_actor", LEROBOT_POLICY_KEYS[4:])
    with pytest.raises(PolicyError, match="missing"):
        load_policy(tmp_path)
