"""SmolVLA's VLM parts that never reach the actions (lm_head, the final norm, the last read layer's queries,
output projection and MLP, the layers after it): kept on the host outside the module tree, still in the
state dict both ways, and skipping them changes no loss, gradient or action."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from smolvla_helpers import TASKS, observation, perturbed_policy, write_vlm

LEROBOT_KEYS = Path(__file__).parent / "lerobot_smolvla" / "model_keys.json"
PREFIX = "model.vlm_with_expert."
TEXT = "vlm.model.text_model."
HEAD = PREFIX + "vlm.lm_head.weight"
LAST_LAYER_PARTS = ("self_attn.q_proj", "self_attn.o_proj", "post_attention_layernorm", "mlp")


def _held_keys(policy) -> set[str]:
    host = policy.model.vlm_with_expert.host_modules
    return {f"{PREFIX}{path}.{name}" for path, module in host.items() for name in module.state_dict()}


def _with_full_vlm(policy):
    """A copy with the host-kept modules put back into the module tree: every VLM layer computed in full (the
    queries, output and MLP of the last one the expert reads, the layers after it) — the reference."""
    full = copy.deepcopy(policy)
    vwe = full.model.vlm_with_expert
    for path, module in vwe.host_modules.items():
        parent_path, _, name = path.rpartition(".")
        parent = vwe.get_submodule(parent_path)
        del parent.__dict__[name]
        parent.add_module(name, module)
    vwe.host_modules = {}
    assert len(list(full.parameters())) > len(list(policy.parameters()))
    return full


def test_unused_weights_live_on_the_host_outside_the_module_tree(vlm_dir):
    policy = perturbed_policy(vlm_dir)
    vwe = policy.model.vlm_with_expert
    assert set(vwe.host_modules) == {"vlm.lm_head", TEXT + "norm", *(f"{TEXT}layers.3.{n}" for n in LAST_LAYER_PARTS)}
    state = policy.state_dict()
    assert set(state) == set(json.loads(LEROBOT_KEYS.read_text()))  # lerobot's keys, every one
    registered = {n for n, _ in policy.named_parameters()} | {n for n, _ in policy.named_buffers()}
    held = _held_keys(policy)
    assert HEAD in held and set(state) - registered == held
    assert PREFIX + TEXT + "layers.3.self_attn.k_proj.weight" in registered  # the expert reads its K/V
    assert vwe.vlm.lm_head is vwe.host_modules["vlm.lm_head"]  # attribute paths still reach them
    before = {k: state[k].clone() for k in held}
    policy.store_frozen_in(torch.bfloat16)
    policy.to("meta")
    assert all(p.device.type == "meta" for p in policy.parameters())
    after = policy.state_dict()
    for key in held:
        assert after[key].device.type == "cpu" and after[key].dtype == torch.float32, key
        assert torch.equal(after[key], before[key]), key


def test_load_state_dict_fills_the_host_modules_and_reports_their_keys(vlm_dir):
    # every value new, the host-held ones too
    state = {k: torch.randn_like(v) for k, v in perturbed_policy(vlm_dir).state_dict().items()}
    target = perturbed_policy(vlm_dir, seed=1)
    target.load_state_dict(state)
    loaded = target.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    head = target.model.vlm_with_expert.host_modules["vlm.lm_head"].weight
    assert head.device.type == "cpu" and head.data_ptr() != state[HEAD].data_ptr()  # copied in, not aliased
    partial = {k: v for k, v in state.items() if k != HEAD}
    assert target.load_state_dict(partial, strict=False).missing_keys == [HEAD]
    with pytest.raises(RuntimeError, match=r"Missing key.*vlm\.lm_head\.weight"):
        target.load_state_dict(partial)
    extra = HEAD.replace("weight", "bias")
    assert target.load_state_dict({**state, extra: torch.zeros(3)}, strict=False).unexpected_keys == [extra]
    with pytest.raises(RuntimeError, match=r"size mismatch for model\.vlm_with_expert\.vlm\.lm_head\.weight"):
        target.load_state_dict({**state, HEAD: torch.zeros(3, 3)})


def test_a_tied_lm_head_is_the_token_embedding_and_stays(tmp_path):
    policy = perturbed_policy(write_vlm(tmp_path / "tied", tie_word_embeddings=True))
    vwe = policy.model.vlm_with_expert
    assert vwe.vlm.lm_head.weight is vwe.vlm.model.text_model.embed_tokens.weight
    assert "vlm.lm_head" not in vwe.host_modules and TEXT + "norm" in vwe.host_modules
    state = policy.state_dict()
    assert state[HEAD].data_ptr() == state[PREFIX + TEXT + "embed_tokens.weight"].data_ptr()


LAST_3 = {"layers.3." + n for n in LAST_LAYER_PARTS}
LAST_2 = {"layers.2." + n for n in LAST_LAYER_PARTS}


@pytest.mark.parametrize("extra,held", [
    ({}, LAST_3),  # the last layer is a cross-attention one
    ({"num_vlm_layers": 3}, LAST_2),  # ... a self-attention one
    ({"attention_mode": "self_attn"}, LAST_3),
    ({"attention_mode": "self_attn", "num_expert_layers": 2}, {"layers.3", *LAST_2}),  # experts on layers 0 and 2
    ({"train_expert_only": False}, LAST_3),
], ids=["cross_last", "self_last", "self_attn", "fewer_experts", "vlm_trains"])
def test_skipping_the_unused_vlm_parts_gives_the_full_computation(vlm_dir, extra, held):
    policy = perturbed_policy(vlm_dir, **extra).train()
    assert set(policy.model.vlm_with_expert.host_modules) == {"vlm.lm_head", TEXT + "norm", *(TEXT + h for h in held)}
    full = _with_full_vlm(policy)
    batch = {**observation(batch=3), "action": torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(5)),
             "action_is_pad": torch.zeros(3, 5, dtype=torch.bool)}
    grads = []
    for model in (policy, full):
        torch.manual_seed(3)  # the same noise and flow times
        loss, _ = model(dict(batch))
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    assert grads[0][1].keys() == grads[1][1].keys() and any(".lm_expert." in n for n in grads[0][1])
    for name, grad in grads[1][1].items():
        torch.testing.assert_close(grads[0][1][name], grad, msg=name)
    noise = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(7))
    for use_cache in (True, False):  # the prefill (cache fill) path and the whole sequence every step
        actions = []
        for model in (policy, full):
            model.config.use_cache = use_cache
            actions.append(model.predict_action_chunk(observation(task=list(TASKS)), noise=noise))
        torch.testing.assert_close(actions[0], actions[1])
