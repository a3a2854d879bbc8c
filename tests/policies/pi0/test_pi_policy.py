"""π0 / π0.5 policies: save -> load -> same actions for the same noise, lerobot 0.6.1's processor files,
prompts (newline; discretized state), quantile normalization, chunking, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pi_helpers import ACTION_DIM, tiny_obs, tiny_policy, tiny_stats

from apprentice.policies import PolicyError, load_policy, save_policy
from apprentice.policies.normalize import Normalizer
from apprentice.policies.paligemma.prompt import discretize_state, pi05_prompt


@pytest.mark.parametrize("policy_type", ["pi0", "pi05"])
def test_save_load_gives_identical_actions_for_the_same_noise(policy_type, tmp_path):
    torch.manual_seed(1)
    policy = tiny_policy(policy_type).eval()
    obs = tiny_obs(task=["pick the cube", "place the cube"])
    noise = torch.randn(2, policy.config.chunk_size, policy.config.max_action_dim)
    before = policy.predict_action_chunk(obs, noise=noise)
    save_policy(policy, tmp_path / "pm")
    loaded = load_policy(tmp_path / "pm")  # its tokenizer comes from the saved tokenizer files
    after = loaded.predict_action_chunk(obs, noise=noise)
    assert before.shape == (2, policy.config.chunk_size, ACTION_DIM)
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    other = loaded.predict_action_chunk(obs, noise=torch.randn_like(noise))
    assert not torch.allclose(other, before)


def test_pi0_processor_files_are_lerobots_layout(tmp_path):
    directory = save_policy(tiny_policy("pi0"), tmp_path / "pm")
    pre = json.loads((directory / "policy_preprocessor.json").read_text())["steps"]
    post = json.loads((directory / "policy_postprocessor.json").read_text())["steps"]
    assert [s["registry_name"] for s in pre] == [
        "rename_observations_processor", "to_batch_processor", "pi0_new_line_processor", "tokenizer_processor",
        "device_processor", "relative_actions_processor", "normalizer_processor"]
    assert pre[6]["state_file"] == "policy_preprocessor_step_6_normalizer_processor.safetensors"
    assert pre[3]["config"]["tokenizer_name"] == "google/paligemma-3b-pt-224" and pre[3]["config"]["max_length"] == 24
    assert [s["registry_name"] for s in post] == [
        "unnormalizer_processor", "absolute_actions_processor", "device_processor"]
    assert (directory / post[0]["state_file"]).is_file() and (directory / pre[6]["state_file"]).is_file()
    config = json.loads((directory / "config.json").read_text())
    assert config["type"] == "pi0" and config["normalization_mapping"]["ACTION"] == "MEAN_STD"
    for name in ("paligemma_variant", "action_expert_variant", "num_inference_steps", "time_sampling_beta_alpha",
                 "image_resolution", "train_expert_only", "scheduler_decay_lr", "tokenizer_max_length"):
        assert name in config


def test_pi05_processor_order_and_quantile_defaults(tmp_path):
    directory = save_policy(tiny_policy("pi05"), tmp_path / "pm")
    pre = json.loads((directory / "policy_preprocessor.json").read_text())["steps"]
    assert [s["registry_name"] for s in pre] == [
        "rename_observations_processor", "to_batch_processor", "relative_actions_processor", "normalizer_processor",
        "pi05_prepare_state_tokenizer_processor_step", "tokenizer_processor", "device_processor"]
    assert pre[3]["state_file"] == "policy_preprocessor_step_3_normalizer_processor.safetensors"
    assert pre[3]["config"]["norm_map"] == {"VISUAL": "IDENTITY", "STATE": "QUANTILES", "ACTION": "QUANTILES"}
    from safetensors.torch import load_file

    saved = load_file(str(directory / pre[3]["state_file"]))
    assert "observation.state.q01" in saved and "action.q99" in saved


def test_quantile_normalization_round_trip_and_formula():
    from apprentice.policies.config import PolicyFeature

    stats = tiny_stats()
    norm = Normalizer({"action": PolicyFeature("ACTION", (ACTION_DIM,))}, {"ACTION": "QUANTILES"}, stats)
    x = torch.randn(5, ACTION_DIM) * 3
    y = norm.normalize("action", x)
    q01, q99 = stats["action"]["q01"], stats["action"]["q99"]
    torch.testing.assert_close(y, 2 * (x - q01) / (q99 - q01) - 1)
    torch.testing.assert_close(norm.unnormalize("action", y), x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.normalize("action", q99.expand(1, -1)), torch.ones(1, ACTION_DIM))


def test_pi05_prompt_carries_the_discretized_normalized_state():
    bins = discretize_state(np.array([-1.0, -0.999, 0.0, 0.999, 1.5]))
    assert bins.tolist() == [0, 0, 128, 255, 255]
    assert pi05_prompt("pick_the cube\n", np.array([3, 200])) == "Task: pick the cube, State: 3 200;\nAction: "
    policy = tiny_policy("pi05")
    obs = tiny_obs(bsize=1)
    state = policy.normalizer.normalize("observation.state", obs["observation.state"])
    prompt = policy.prompts(obs, state)[0]
    assert prompt == pi05_prompt("pick the cube", discretize_state(state.numpy())[0])
    assert len(prompt.split("State: ")[1].split(";")[0].split()) == 3  # the real state dims, unpadded


def test_pi0_prompt_ends_with_newline_and_tokens_are_right_padded():
    policy = tiny_policy("pi0")
    obs = tiny_obs(task=["pick the cube", "go left\n"])
    assert policy.prompts(obs, torch.zeros(2, 3)) == ["pick the cube\n", "go left\n"]
    tokens, mask = policy.prompt(policy.prompts(obs, torch.zeros(2, 3)), torch.device("cpu"))
    assert tokens.shape == (2, 24) and tokens[0, 0] == 2  # BOS first
    assert mask[0, :5].all() and not mask[0, 5:].any()  # <bos> pick the cube \n, then padding


def test_select_action_runs_the_chunk_n_action_steps_at_a_time():
    torch.manual_seed(0)
    policy = tiny_policy("pi0").eval()
    obs = tiny_obs()
    calls = []
    original = policy.predict_action_chunk
    policy.predict_action_chunk = lambda o, **kw: calls.append(1) or original(o, **kw)  # type: ignore[method-assign]
    actions = [policy.select_action(obs) for _ in range(4)]
    assert len(calls) == 2 and actions[0].shape == (2, ACTION_DIM)


def test_missing_camera_is_padded_and_missing_state_is_refused():
    policy = tiny_policy("pi0", empty_cameras=1).eval()
    assert "observation.images.empty_camera_0" in policy.config.input_features
    assert policy.predict_action_chunk(tiny_obs()).shape[1] == policy.config.chunk_size
    obs = tiny_obs()
    del obs["observation.state"]
    with pytest.raises(PolicyError, match=r"observation\.state"):
        policy.predict_action_chunk(obs)
    with pytest.raises(PolicyError, match="noise must be"):
        policy.predict_action_chunk(tiny_obs(), noise=torch.zeros(2, 3, 3))
    with pytest.raises(PolicyError, match="n_action_steps"):
        tiny_policy("pi0", n_action_steps=9)


def test_scheduler_is_lerobots_cosine_with_warmup_scaled_to_short_runs():
    policy = tiny_policy("pi0")
    opt = policy.make_optimizer()
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["weight_decay"] == 0.01
    sched = policy.make_scheduler(opt, num_steps=5)  # decay_steps 10 > 5: warmup 2 -> 1, decay -> 5
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak, low = policy.config.optimizer_lr, policy.config.scheduler_decay_lr
    assert lrs[0] == pytest.approx(peak / 2)  # warmup from 1/(warmup+1)
    # lerobot's cosine counts from step 0 (not from the end of warmup): step 1 of 5 is already decayed.
    alpha = low / peak
    assert lrs[1] == pytest.approx(peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi / 5)) + alpha))
    assert lrs[5] == pytest.approx(low) and lrs[6] == pytest.approx(low)


def test_rtc_guides_the_chunk_toward_the_committed_prefix():
    from apprentice.policies.rtc import RTCConfig, RTCGuidance

    torch.manual_seed(0)
    policy = tiny_policy("pi0").eval()
    noise = torch.randn(2, policy.config.chunk_size, policy.config.max_action_dim)
    plain = policy.predict_action_chunk(tiny_obs(), noise=noise)
    assert torch.equal(plain, policy.predict_action_chunk(tiny_obs(), noise=noise, rtc=RTCGuidance(None, 2)))

    def norm(x):
        return policy.normalizer.normalize("action", x.float())

    committed = norm(plain) + 2.0  # the previous chunk's actions, away from what this chunk would say
    rtc = RTCGuidance(committed, inference_delay=2, config=RTCConfig(enabled=True, execution_horizon=3))
    guided = policy.predict_action_chunk(tiny_obs(), noise=noise, rtc=rtc)
    before = (norm(plain)[:, :2] - committed[:, :2]).abs().mean()
    after = (norm(guided)[:, :2] - committed[:, :2]).abs().mean()
    assert after < 0.5 * before, (float(before), float(after))


def test_a_hub_id_that_cannot_be_fetched_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PolicyError, match="lerobot/pi0_not_here: not a local directory and not downloadable"):
        load_policy("lerobot/pi0_not_here")
