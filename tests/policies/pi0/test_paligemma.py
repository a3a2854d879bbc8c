"""The shared PaliGemma + expert module: the prefix KV cache gives what the joint pass gives, adaRMSNorm
conditioning, bf16 parameter policy, freezing, tied embeddings, lerobot's key names."""

from __future__ import annotations

import pytest
import torch
from pi_helpers import TINY_EXPERT, TINY_VLM, tiny_obs, tiny_policy

from apprentice.policies.paligemma import AdaRMSNorm, PaliGemmaWithExpert
from apprentice.policies.paligemma.masks import make_att_2d_masks, position_ids


def _joint_velocity(policy, obs, x_t, t):
    """v from one pass over prefix + suffix together (the training path), for comparison with the cache."""
    core = policy.model
    images, img_masks, tokens, masks, state, _ = policy._inputs(obs)
    prefix, pre_pad, pre_att = core.embed_prefix(images, img_masks, tokens, masks)
    suffix, suf_pad, suf_att, cond = core.embed_suffix(state, x_t, t)
    pad = torch.cat([pre_pad, suf_pad], 1)
    mask = make_att_2d_masks(pad, torch.cat([pre_att, suf_att], 1))
    _, out, _ = core.paligemma_with_expert(prefix, suffix, mask, position_ids(pad), adarms_cond=cond)
    return core.action_out_proj(out[:, -policy.config.chunk_size :])


@pytest.mark.parametrize("policy_type", ["pi0", "pi05"])
def test_prefix_cache_gives_the_joint_pass_velocity(policy_type):
    torch.manual_seed(0)
    policy = tiny_policy(policy_type).eval()
    obs = tiny_obs(task=["pick the cube", "go left"])  # different prompt lengths: padding inside the prefix
    x_t = torch.randn(2, policy.config.chunk_size, policy.config.max_action_dim)
    t = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        cached = policy.make_velocity_fn(obs)(x_t, t)
        joint = _joint_velocity(policy, obs, x_t, t)
    torch.testing.assert_close(cached, joint, atol=1e-5, rtol=1e-4)


def test_adarms_conditioning_changes_the_expert_output_with_time():
    torch.manual_seed(0)
    policy = tiny_policy("pi05").eval()
    # Zero-initialised modulation weights make time invisible at init; give them values, as training does.
    for m in policy.model.paligemma_with_expert.gemma_expert.modules():
        if isinstance(m, AdaRMSNorm):
            torch.nn.init.normal_(m.dense.weight, std=0.2)
    velocity = policy.make_velocity_fn(tiny_obs())
    x_t = torch.randn(2, policy.config.chunk_size, policy.config.max_action_dim)
    with torch.no_grad():
        early, late = velocity(x_t, torch.full((2,), 0.9)), velocity(x_t, torch.full((2,), 0.1))
    assert (early - late).abs().max() > 1e-3


def test_adarms_norm_starts_as_plain_rmsnorm_and_gates_by_condition():
    norm = AdaRMSNorm(8, cond_dim=4)
    plain = AdaRMSNorm(8)
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        norm.dense.bias.zero_()
    out, gate = norm(x, torch.randn(2, 4))
    torch.testing.assert_close(out, plain(x)[0])
    assert gate is not None and torch.count_nonzero(gate) == 0
    with pytest.raises(ValueError, match="condition"):
        norm(x)


def test_bfloat16_keeps_vision_and_norms_float32_and_freezing_flags():
    model = PaliGemmaWithExpert(TINY_VLM, TINY_EXPERT, image_size=32, expert_adarms=True, precision="bfloat16",
                                train_expert_only=True)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert dtypes["paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight"] == torch.float32
    assert dtypes["gemma_expert.model.layers.0.input_layernorm.dense.weight"] == torch.float32
    assert dtypes["gemma_expert.model.layers.0.self_attn.q_proj.weight"] == torch.bfloat16
    assert dtypes["paligemma.model.language_model.layers.1.mlp.up_proj.weight"] == torch.bfloat16
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("gemma_expert.") for n in trainable)
    model.train()
    assert not model.paligemma.training and model.gemma_expert.training


def test_bf16_joint_pass_runs_and_matches_float32_roughly():
    torch.manual_seed(0)
    policy = tiny_policy("pi0").eval()
    obs = tiny_obs()
    x_t = torch.randn(2, policy.config.chunk_size, policy.config.max_action_dim)
    t = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        ref = policy.make_velocity_fn(obs)(x_t, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = policy.make_velocity_fn(obs)(x_t, t)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.1 * ref.abs().mean() + 0.05


def test_embedding_and_lm_head_are_tied_and_keys_are_lerobots():
    policy = tiny_policy("pi05")
    pg = policy.model.paligemma_with_expert.paligemma
    assert pg.lm_head.weight.data_ptr() == pg.model.language_model.embed_tokens.weight.data_ptr()
    keys = set(policy.state_dict())
    for key in (
        "model.paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight",
        "model.paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight",
        "model.paligemma_with_expert.paligemma.model.language_model.layers.0.input_layernorm.weight",
        "model.paligemma_with_expert.gemma_expert.model.layers.1.input_layernorm.dense.weight",
        "model.paligemma_with_expert.gemma_expert.model.norm.dense.bias",
        "model.paligemma_with_expert.gemma_expert.lm_head.weight",
        "model.action_in_proj.weight",
        "model.time_mlp_out.bias",
    ):
        assert key in keys, key
    assert not any("gemma_expert.model.embed_tokens" in k for k in keys)
