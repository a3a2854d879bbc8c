"""SmolVLA's model on CPU: the cached prefix gives the actions of the full pass, the RTC hook contract,
language conditioning, gradient checkpointing, LeRobot's LR schedule, and its bad-input errors."""

from __future__ import annotations

import math

import pytest
import torch
from smolvla_helpers import TASKS, fields, observation, stats, write_vlm

from apprentice.policies import PolicyError, make_config, make_policy
from apprentice.policies.rtc import RTCConfig, RTCGuidance


def _policy(vlm_dir, **extra):
    torch.manual_seed(0)
    policy = make_policy(make_config("smolvla", **fields(vlm_dir, **extra)), stats())
    with torch.no_grad():  # random non-zero biases/norms so every path matters
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return policy.eval()


def _noise(batch=2):
    return torch.randn(batch, 5, 8, generator=torch.Generator().manual_seed(7))


def test_prefix_cache_gives_the_actions_of_the_full_sequence(vlm_dir):
    policy = _policy(vlm_dir)
    cached = policy.predict_action_chunk(observation(task=list(TASKS)), noise=_noise())
    policy.config.use_cache = False
    full = policy.predict_action_chunk(observation(task=list(TASKS)), noise=_noise())
    assert cached.shape == (2, 5, 4)
    assert torch.allclose(cached, full, atol=1e-5)


def test_task_conditions_the_tokens_and_the_actions(vlm_dir):
    policy = _policy(vlm_dir)
    red, _ = policy.tokenize([TASKS[0]])
    blue, _ = policy.tokenize([TASKS[1]])
    assert not torch.equal(red, blue)
    # LeRobot's prompt: the task with a trailing newline (not doubled when already there).
    assert torch.equal(policy.tokenize([TASKS[0] + "\n"])[0], red)
    assert red.shape[1] > policy.tokenize.tokenizer([TASKS[0]], return_tensors="pt")["input_ids"].shape[1] - 1
    a = policy.predict_action_chunk(observation(task=TASKS[0]), noise=_noise())
    b = policy.predict_action_chunk(observation(task=TASKS[1]), noise=_noise())
    assert (a - b).abs().max() > 1e-4


def test_dataset_tasks_by_index_match_tokenising_the_strings(vlm_dir):
    policy = _policy(vlm_dir)
    policy.set_tasks(["move left", TASKS[1], TASKS[0]])
    obs = observation(task=[TASKS[0], TASKS[1]])
    by_string = policy.language(obs, 2)
    by_index = policy.language({**obs, "task_index": torch.tensor([2.0, 1.0])}, 2)
    n = by_string[1].sum(1)
    assert torch.equal(by_index[1].sum(1), n)  # padded further (longest of all tasks), same valid tokens
    for i in range(2):
        assert torch.equal(by_index[0][i][: n[i]], by_string[0][i][: n[i]])
    with torch.no_grad():
        v_string = policy.model.make_velocity_fn(*policy._inputs({**obs}))(_noise(), torch.full((2,), 0.5))
        v_index = policy.model.make_velocity_fn(*policy._inputs({**obs, "task_index": torch.tensor([2.0, 1.0])}))(
            _noise(), torch.full((2,), 0.5))
    assert torch.allclose(v_string, v_index, atol=1e-5)  # extra padding is masked and shifts no position


def test_rtc_guides_the_chunk_toward_the_committed_prefix(vlm_dir):
    policy = _policy(vlm_dir)
    plain = policy.predict_action_chunk(observation(), noise=_noise())
    assert torch.equal(plain, policy.predict_action_chunk(observation(), noise=_noise(), rtc=RTCGuidance(None, 2)))

    def norm(x):
        return policy.normalizer.normalize("action", x.float())

    committed = norm(plain) + 2.0  # the previous chunk's actions, away from what this chunk would say
    rtc = RTCGuidance(committed, inference_delay=2, config=RTCConfig(enabled=True, execution_horizon=3))
    guided = policy.predict_action_chunk(observation(), noise=_noise(), rtc=rtc)
    before = (norm(plain)[:, :2] - committed[:, :2]).abs().mean()
    after = (norm(guided)[:, :2] - committed[:, :2]).abs().mean()
    assert after < 0.5 * before, (float(before), float(after))


def test_velocity_fn_is_the_flow_the_loss_trains(vlm_dir):
    # At t the model is trained towards noise - actions at x_t = t*noise + (1-t)*actions: the loss of the
    # forward pass equals the squared error of the velocity fn on the same (noise, t).
    policy = _policy(vlm_dir)
    obs = observation()
    actions = torch.randn(2, 5, 8)
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        losses = policy.model(*policy._inputs(obs), actions, noise=_noise(), time=t)
        x_t = t[:, None, None] * _noise() + (1 - t[:, None, None]) * actions
        v = policy.model.make_velocity_fn(*policy._inputs(obs))(x_t, t)
    assert torch.allclose(losses, (_noise() - actions - v) ** 2, atol=1e-5)


def test_grad_checkpointing_keeps_loss_and_gradients(vlm_dir):
    batch = {**observation(batch=3), "action": torch.randn(3, 5, 4), "action_is_pad": torch.zeros(3, 5, dtype=bool)}
    grads = []
    for on in (False, True):
        policy = _policy(vlm_dir).train()
        policy.set_grad_checkpointing(on)
        torch.manual_seed(3)
        loss, _ = policy(dict(batch))
        loss.backward()
        grads.append((loss.detach(), policy.model.action_out_proj.weight.grad.clone(),
                      policy.model.state_proj.weight.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads[0][1:], grads[1][1:]))
    assert grads[0][2].abs().sum() > 0  # the state token's gradient flows back through the frozen VLM


def test_frozen_and_trainable_parts_follow_the_flags(vlm_dir):
    policy = _policy(vlm_dir)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert not any(".vlm." in n for n in trainable)  # train_expert_only
    assert any(".lm_expert." in n for n in trainable) and "model.state_proj.weight" in trainable
    full = _policy(vlm_dir, train_expert_only=False)
    trainable = {n for n, p in full.named_parameters() if p.requires_grad}
    assert any("text_model.layers.0." in n for n in trainable)
    assert not any("vision_model" in n or "text_model.layers.3." in n or "lm_head" in n for n in trainable)


def test_cosine_schedule_is_lerobots(vlm_dir):
    policy = _policy(vlm_dir, scheduler_warmup_steps=4, scheduler_decay_steps=20)
    opt = policy.make_optimizer()
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["weight_decay"] == 1e-10
    sched = policy.make_scheduler(opt, num_steps=10)  # shorter run: warmup 4 -> 2, decay 20 -> 10
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert math.isclose(lrs[0], 1e-4 / 3) and math.isclose(lrs[1], 1e-4 * (1 - 2 / 3 * 0.5))
    alpha = 2.5e-6 / 1e-4
    assert math.isclose(lrs[6], 1e-4 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * 0.6)) + alpha))
    assert math.isclose(lrs[10], 2.5e-6)


def test_missing_tokenizer_files_is_one_clear_error(tmp_path):
    bare = write_vlm(tmp_path / "no-tokenizer", tokenizer=False)
    with pytest.raises(PolicyError, match=r"no tokenizer files.*--policy.vlm_model_name"):
        make_policy(make_config("smolvla", **fields(bare)), stats())


def test_image_size_that_does_not_fit_the_vlm_is_one_clear_error(vlm_dir):
    with pytest.raises(PolicyError, match=r"resize_imgs_with_padding=\[40,40\].*divisible by .* 16"):
        make_policy(make_config("smolvla", **fields(vlm_dir, resize_imgs_with_padding=[40, 40])), stats())


def test_missing_or_empty_task_is_one_clear_error(vlm_dir):
    policy = _policy(vlm_dir)
    obs = observation()
    del obs["task"]
    with pytest.raises(PolicyError, match=r"no 'task'.*--task"):
        policy.predict_action_chunk(obs)
    with pytest.raises(PolicyError, match=r"empty.*--task"):
        policy.predict_action_chunk(observation(task=["  ", TASKS[0]]))


def test_unknown_vlm_dir_is_one_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="no such directory"):
        make_policy(make_config("smolvla", **fields(tmp_path / "nowhere" / "x")), stats())
