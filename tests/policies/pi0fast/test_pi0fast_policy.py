"""π0-FAST on a tiny PaliGemma built from a config: attention pattern, loss on action tokens only, decoding
(KV cache = full recompute), save -> load -> identical actions, a lerobot-layout checkpoint loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pi0fast_helpers import CHUNK, FEATURES, IMG, STATS, D, tiny_fields
from safetensors.torch import save_file

from apprentice.policies import PolicyError, load_policy, make_policy, save_policy

pytest.importorskip("transformers")



@pytest.fixture(scope="module")
def fields(tmp_path_factory) -> dict:
    return {**tiny_fields(tmp_path_factory.mktemp("tok"), CHUNK, D, IMG), **FEATURES}


def _policy(fields: dict, seed: int = 0, **extra):
    torch.manual_seed(seed)
    return make_policy("pi0fast", STATS, **fields, **extra)


def _batch(b: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, CHUNK)[None, :, None]
    return {
        "observation.state": torch.rand(b, D, generator=g) * 2 - 1,
        "observation.images.top": torch.rand(b, 3, IMG, IMG, generator=g),
        "action": 0.5 * torch.sin(3 * t + torch.rand(b, 1, D, generator=g) * 3),
        "task": ["reach the target", "go left"][:b],
    }


def test_prompt_and_action_tokens_follow_lerobot(fields):
    policy = _policy(fields)
    tk = policy.tokens
    ids, mask = tk.prompts(["go_left\n"], torch.tensor([[-1.0, 0.0, 0.999, 2.0]]), torch.device("cpu"))
    text = tk.text.convert_ids_to_tokens(ids[0][mask[0]].tolist())
    # <bos> Task: go left, State: 0 128 255 255;  (np.digitize over 256 bins of [-1, 1], clipped at 255)
    assert text[:8] == ["<bos>", "Task", ":", "go", "left", ",", "State", ":"]
    assert text[8:12] == ["0", "128", "255", "255"] and text[12] == ";"
    act, amask = tk.actions(_batch()["action"])
    row = act[0][amask[0]].tolist()
    assert row[0] == tk.bos and row[1:3] == tk.prefix_ids and row[-2:] == [tk.end_id, tk.eos]
    fast_ids = [tk.vocab_size - 1 - tk.skip - t for t in row[3:-2]]
    assert fast_ids == tk.fast.encode(_batch()["action"][0].numpy())[0]


def test_attention_prefix_bidirectional_actions_causal(fields):
    policy = _policy(fields).eval()
    b = policy.normalizer.normalize_batch(_batch(1))
    images, img_masks, tokens, masks = policy._prompt(b, training=True)
    act, amask = policy.tokens.actions(b["action"])
    model = policy.model
    captured = {}

    def hook(_m, _inp, out):
        captured["h"] = out

    handle = model.paligemma_with_expert.language_model.norm.register_forward_hook(hook)
    model(images, img_masks, tokens, masks, act, amask)
    h1 = captured["h"].clone()
    n = int(amask.sum())
    act2 = act.clone()
    act2[0, n - 2] = (act2[0, n - 2] + 7) % 600  # change one late action token
    model(images, img_masks, tokens, masks, act2, amask)
    h2 = captured["h"]
    tokens2 = tokens.clone()
    tokens2[0, 3] = tokens2[0, 4]  # change one prompt token
    model(images, img_masks, tokens2, masks, act, amask)
    h3 = captured["h"]
    handle.remove()
    p = h1.shape[1] - act.shape[1]
    pos = p + n - 2
    valid = torch.cat([torch.ones(p - tokens.shape[1], dtype=torch.bool), masks[0], amask[0]])  # not padding
    before = valid.clone()
    before[pos:] = False
    # Nothing before the changed token sees it (prefix + earlier actions); it and later ones do.
    assert torch.equal(h1[0, before], h2[0, before])
    assert not torch.allclose(h1[0, pos:][valid[pos:]], h2[0, pos:][valid[pos:]])
    n_img = p - tokens.shape[1]
    assert not torch.allclose(h1[:, :n_img], h3[:, :n_img])  # image tokens see the prompt (bidirectional)


def test_training_steps_lower_the_loss(fields):
    policy = _policy(fields).train()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    batch = _batch()
    losses = []
    for _ in range(8):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] * 0.8
    with pytest.raises(PolicyError, match="task"):
        policy({k: v for k, v in batch.items() if k != "task"})


def test_kv_cache_decoding_equals_full_recompute(fields):
    policy = _policy(fields).eval()
    b = policy.normalizer.normalize_batch(_batch())
    images, img_masks, tokens, masks = policy._prompt(b, training=False)
    kw = {"bos_id": policy.tokens.bos, "end_id": -1, "max_decoding_steps": 12}
    cached = policy.model.generate(images, img_masks, tokens, masks, use_kv_cache=True, **kw)
    full = policy.model.generate(images, img_masks, tokens, masks, use_kv_cache=False, **kw)
    assert torch.equal(cached, full)
    sampled = policy.model.generate(images, img_masks, tokens, masks, temperature=1.0,
                                    generator=torch.Generator().manual_seed(0), **kw)
    assert sampled.shape == cached.shape


def _teacher_forced_argmax(policy, images, img_masks, tokens, masks, action_ids: torch.Tensor) -> torch.Tensor:
    """What training's forward predicts after each of `action_ids` (its attention and positions exactly)."""
    model = policy.model
    prefix, prefix_pad = model.embed_prefix(images, img_masks, tokens, masks)
    act = model.paligemma_with_expert.embed_tokens(action_ids).to(prefix.dtype)
    p, a = prefix.shape[1], act.shape[1]
    allowed = torch.ones(p + a, p + a, dtype=torch.bool)
    allowed[:p, p:] = False
    allowed[p:, p:] = torch.tril(torch.ones(a, a, dtype=torch.bool))
    pad = torch.cat([prefix_pad, torch.ones_like(action_ids, dtype=torch.bool)], dim=1)
    allowed = allowed[None] & pad[:, None, :] & pad[:, :, None]
    hidden = model._layers(torch.cat([prefix, act], 1), model._mask4d(allowed, prefix.dtype), torch.cumsum(pad, 1) - 1)
    return model.paligemma_with_expert.paligemma.lm_head(hidden[:, p:]).argmax(-1)


def test_decoding_with_bos_as_first_action_token_matches_training(fields):
    """decode_bos_in_prefix=False: greedy decoding is exactly the argmax training's forward computes for the
    same tokens, so a model that fits its training tokens decodes them (lerobot's default puts the <bos> inside
    the bidirectional prefix, which training never shows); written to config.json only when set."""
    policy = _policy(fields).eval()
    b = policy.normalizer.normalize_batch(_batch())
    images, img_masks, tokens, masks = policy._prompt(b, training=False)
    bos = policy.tokens.bos
    kw = {"bos_id": bos, "end_id": -1, "max_decoding_steps": 8}
    with torch.no_grad():
        ours = policy.model.generate(images, img_masks, tokens, masks, bos_in_prefix=False, **kw)
        full = policy.model.generate(images, img_masks, tokens, masks, bos_in_prefix=False, use_kv_cache=False, **kw)
        assert torch.equal(ours, full)
        seq = torch.cat([torch.full((ours.shape[0], 1), bos), ours[:, :-1]], dim=1)
        assert torch.equal(_teacher_forced_argmax(policy, images, img_masks, tokens, masks, seq), ours)
    assert _policy(fields, decode_bos_in_prefix=False).config.to_dict()["decode_bos_in_prefix"] is False
    assert "decode_bos_in_prefix" not in _policy(fields).config.to_dict()


def test_untrained_decoding_never_raises_and_counts_fallbacks(fields):
    policy = _policy(fields).eval()
    obs = {k: v for k, v in _batch().items() if k != "action"}
    chunk = policy.predict_action_chunk(obs)
    assert chunk.shape == (2, CHUNK, D) and torch.isfinite(chunk).all()
    stats = policy.decode_stats()
    assert stats["chunks"] == 2 and stats["fallbacks"] + stats["prefix_missing"] >= 1
    policy.reset()
    assert policy.select_action(obs).shape == (2, D)


def test_save_load_identical_actions(fields, tmp_path):
    policy = _policy(fields, seed=3)
    save_policy(policy, tmp_path / "pm")
    raw = json.loads((tmp_path / "pm" / "config.json").read_text())
    assert raw["type"] == "pi0_fast"  # lerobot's name
    pre = json.loads((tmp_path / "pm" / "policy_preprocessor.json").read_text())["steps"]
    assert [s["registry_name"] for s in pre] == [
        "rename_observations_processor", "to_batch_processor", "relative_actions_processor", "normalizer_processor",
        "pi0_fast_prepare_state_tokenizer_processor_step", "tokenizer_processor", "action_tokenizer_processor",
        "device_processor"]
    assert pre[3]["state_file"] == "policy_preprocessor_step_3_normalizer_processor.safetensors"
    post = json.loads((tmp_path / "pm" / "policy_postprocessor.json").read_text())["steps"]
    assert [s["registry_name"] for s in post] == ["unnormalizer_processor", "absolute_actions_processor",
                                                  "device_processor"]
    loaded = load_policy(tmp_path / "pm")
    obs = {k: v for k, v in _batch(seed=5).items() if k != "action"}
    torch.testing.assert_close(loaded.predict_action_chunk(obs), policy.eval().predict_action_chunk(obs),
                               rtol=0, atol=0)


def test_lerobot_layout_checkpoint_loads(fields, tmp_path):
    """config.json as lerobot writes it (type pi0_fast, its extra fields), weights under lerobot's key names with
    the tied lm_head only, stats in the step-3 normalizer file its pi0_fast preprocessor names."""
    src = _policy(fields, seed=4)
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("embed_tokens.weight")}
    for key in ("model.paligemma_with_expert.paligemma.lm_head.weight",
                "model.paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight",
                "model.paligemma_with_expert.paligemma.model.language_model.layers.1.post_attention_layernorm.weight",
                "model.paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding"
                ".weight",
                "model.paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight",
                "model.paligemma_with_expert.paligemma.model.language_model.norm.weight"):
        assert key in state, key
    d = tmp_path / "lerobot"
    d.mkdir()
    config = {"type": "pi0_fast", **{k: v for k, v in src.config.to_dict().items() if k != "type"},
              "rtc_config": None, "use_peft": False, "some_future_field": 1}
    (d / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(d / "model.safetensors"))
    flat = {f"{k}.{s}": v for k, per in STATS.items() for s, v in per.items()}
    save_file(flat, str(d / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    steps = [{"registry_name": n} for n in ("rename_observations_processor", "to_batch_processor",
                                             "relative_actions_processor")]
    steps.append({"registry_name": "normalizer_processor", "state_file":
                  "policy_preprocessor_step_3_normalizer_processor.safetensors",
                  "config": {"eps": 1e-8,
                             "norm_map": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}}})
    (d / "policy_preprocessor.json").write_text(json.dumps({"name": "policy_preprocessor", "steps": steps}))
    loaded = load_policy(d)
    obs = {k: v for k, v in _batch(seed=6).items() if k != "action"}
    torch.testing.assert_close(loaded.predict_action_chunk(obs), src.eval().predict_action_chunk(obs), rtol=0, atol=0)


def test_bf16_weights_keep_the_vision_path_float32(fields):
    policy = _policy(fields, dtype="bfloat16")
    pg = policy.model.paligemma_with_expert.paligemma
    assert pg.model.language_model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert pg.model.vision_tower.vision_model.embeddings.patch_embedding.weight.dtype == torch.float32
    assert pg.model.language_model.layers[0].input_layernorm.weight.dtype == torch.float32
    loss, _ = policy(_batch())
    assert torch.isfinite(loss)


def test_grad_checkpointing_same_gradients(fields):
    batch = _batch()
    grads = []
    for on in (False, True):
        policy = _policy(fields, seed=7).train()
        policy.set_grad_checkpointing(on)
        loss, _ = policy(batch)
        loss.backward()
        grads.append(policy.model.paligemma_with_expert.paligemma.lm_head.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_freeze_vision_encoder(fields):
    policy = _policy(fields, freeze_vision_encoder=True)
    vision = policy.model.paligemma_with_expert.paligemma.model.vision_tower
    assert not any(p.requires_grad for p in vision.parameters())
    assert all(p.requires_grad for p in policy.model.paligemma_with_expert.language_model.parameters())


def test_bad_tokenizer_dir_is_named(fields, tmp_path):
    policy = _policy({**fields, "action_tokenizer_name": str(tmp_path / "nope")})
    with pytest.raises(PolicyError, match="nope"):
        _ = policy.tokens
    assert Path(fields["text_tokenizer_name"]).is_dir()


def test_hub_repo_id_resolves_through_huggingface_hub(monkeypatch):
    """A repo id goes to huggingface_hub (JSON + safetensors only); offline and uncached it is a clear error."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PolicyError, match=r"apprentice-test/no-such-policy.*local pretrained_model"):
        load_policy("apprentice-test/no-such-policy")


def test_missing_camera_is_masked_missing_state_is_an_error(fields):
    two_cams = {**fields, "input_features": {**FEATURES["input_features"],
                                             "observation.images.wrist": {"type": "VISUAL", "shape": [3, IMG, IMG]}}}
    policy = _policy(two_cams).eval()
    obs = {k: v for k, v in _batch().items() if k != "action"}
    images, masks = policy._images(obs)
    assert len(images) == 2 and masks[1].sum() == 0 and (images[1] == -1).all()
    assert policy.predict_action_chunk(obs).shape == (2, CHUNK, D)
    with pytest.raises(PolicyError, match=r"observation\.state"):
        policy.predict_action_chunk({k: v for k, v in obs.items() if k != "observation.state"})


# config.json keys lerobot 0.6.1's PI0FastConfig()._save_pretrained writes (its parser rejects unknown ones).
LEROBOT_KEYS = {
    "action_expert_variant", "action_feature_names", "action_tokenizer_name", "chunk_size", "compile_mode",
    "compile_model", "device", "dtype", "empty_cameras", "fast_skip_tokens", "gradient_checkpointing",
    "image_resolution", "input_features", "license", "max_action_dim", "max_action_tokens", "max_decoding_steps",
    "max_state_dim", "n_action_steps", "n_obs_steps", "normalization_mapping", "optimizer_betas", "optimizer_eps",
    "optimizer_grad_clip_norm", "optimizer_lr", "optimizer_weight_decay", "output_features", "paligemma_variant",
    "pretrained_path", "pretrained_revision", "private", "push_to_hub", "relative_exclude_joints", "repo_id",
    "rtc_config", "scheduler_decay_lr", "scheduler_decay_steps", "scheduler_warmup_steps", "tags", "temperature",
    "text_tokenizer_name", "tokenizer_max_length", "type", "use_amp", "use_kv_cache", "use_peft",
    "use_relative_actions", "validate_action_token_prefix"}


def test_config_json_has_only_lerobot_fields_by_default(fields):
    from apprentice.policies.pi0fast import PI0FastConfig

    written = PI0FastConfig().to_dict()
    assert set(written) <= LEROBOT_KEYS and written["type"] == "pi0_fast"
    assert LEROBOT_KEYS - set(written) <= {"pretrained_revision"}
    tiny = PI0FastConfig.from_dict(dict(fields)).to_dict()
    assert "vlm_config" in tiny  # ours, written only when set (a tiny model lerobot could not build anyway)


def test_overfit_model_decodes_the_trained_chunks_and_token_stats_say_so(fields):
    """The end-to-end check of train/infer consistency: a model fit to a few frames (teacher-forced loss ~0)
    greedy-decodes, through predict_action_chunk (prompt, <bos>, "Action: ", "|", FAST decode, unnormalise),
    exactly the FAST round trip of the chunks it was trained on; token_stats reports every position right."""
    policy = _policy(fields, seed=1, decode_bos_in_prefix=False).train()
    batch = _batch(2, seed=3)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(300):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if float(loss.detach()) < 2e-3:
            break
    stats = policy.token_stats(batch)
    assert stats["rows_all_argmax"] == 1.0 and all(a == 1.0 for a in stats["acc_per_position"])
    assert stats["ce"] == pytest.approx(float(policy(batch)[0]), abs=1e-4)  # the training loss, per position kept
    decoded = policy.predict_action_chunk({k: v for k, v in batch.items() if k != "action"})
    assert torch.allclose(decoded, policy.fast_round_trip(batch["action"]), atol=1e-5)
    assert policy.decode_stats()["fallbacks"] == 0 and policy.decode_stats()["prefix_missing"] == 0
