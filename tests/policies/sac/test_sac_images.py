"""SAC on camera inputs: the shared image encoder learns from the critic only, and stays fixed when frozen."""

from __future__ import annotations

import pytest
import torch

from apprentice.policies import make_config, make_policy
from apprentice.policies.sac import SACAlgorithm

CAM = "observation.images.front"


def algorithm(freeze: bool) -> SACAlgorithm:
    cfg = make_config(
        "sac",
        input_features={CAM: {"type": "VISUAL", "shape": [3, 48, 48]}, "observation.state": {"type": "STATE",
                                                                                          "shape": [2]}},
        output_features={"action": {"type": "ACTION", "shape": [2]}},
        num_discrete_actions=3, latent_dim=16, image_encoder_hidden_dim=8, freeze_vision_encoder=freeze,
        actor_network_kwargs={"hidden_dims": [16]}, critic_network_kwargs={"hidden_dims": [16]},
        discrete_critic_network_kwargs={"hidden_dims": [16]},
    )
    stats = {CAM: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)},
             "observation.state": {"min": -torch.ones(2), "max": torch.ones(2)},
             "action": {"min": -torch.ones(2), "max": torch.ones(2)}}
    return SACAlgorithm(make_policy(cfg, stats))


def batch(n: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 255, (n, 3, 48, 48), generator=g, dtype=torch.uint8)
    state = torch.rand(n, 2, generator=g) * 2 - 1
    action = torch.cat([torch.rand(n, 2, generator=g) * 2 - 1, torch.randint(0, 3, (n, 1), generator=g)], 1)
    return {CAM: img, f"next.{CAM}": img.flip(0), "observation.state": state, "next.observation.state": state,
            "action": action, "next.reward": torch.rand(n, generator=g), "next.done": torch.zeros(n),
            "complementary_info.discrete_penalty": torch.full((n,), -0.05)}


@pytest.mark.parametrize("freeze", [False, True])
def test_image_encoder_trains_unless_frozen(freeze: bool) -> None:
    sac = algorithm(freeze)
    conv = sac.policy.encoder_critic.image_encoder.image_enc_layers[0].weight
    before = conv.detach().clone()
    stats = sac.update(batch())
    assert {"loss_critic", "loss_discrete_critic", "loss_actor", "loss_temperature"} <= set(stats)
    assert torch.equal(conv, before) == freeze
    action = sac.select_action({CAM: batch()[CAM][0].permute(1, 2, 0).numpy(), "observation.state": batch()[
        "observation.state"][0].numpy()})
    assert action.shape == (3,) and action[2] in (0.0, 1.0, 2.0)


def test_actor_update_leaves_the_shared_encoder_and_critics() -> None:
    """The actor's step moves the actor head only: the encoder is the critics' to learn (DrQ / lerobot)."""
    sac = algorithm(False)
    fb = sac._forward_batch(batch())
    fixed = {n: p.detach().clone() for n, p in sac.policy.named_parameters()
             if n.startswith(("encoder_critic.", "critic_ensemble.critics."))}
    head = sac.policy.actor.mean_layer.weight.detach().clone()
    sac._step("actor", sac.policy.loss_actor(fb))
    assert all(torch.equal(p, fixed[n]) for n, p in sac.policy.named_parameters() if n in fixed)
    assert not torch.equal(sac.policy.actor.mean_layer.weight, head)
