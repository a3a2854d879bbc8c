"""VQ-BeT: two-phase training on a tiny real dataset, save/load, the phase switch, optimizer and
scheduler as LeRobot's, and bad configs named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from vqbet_helpers import TINY, write_tiny_dataset

from apprentice.dataset import LeRobotDataset
from apprentice.policies import (
    PolicyError,
    features_from_dataset,
    load_policy,
    make_config,
    make_policy,
    save_policy,
    stats_to_tensors,
)
from apprentice.train.data import FrameCache, to_device


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("vqbet") / "tiny")


def _setup(root: Path, n: int = 8, **fields: object):
    ds = LeRobotDataset(root)
    inputs, outputs = features_from_dataset(ds.features)
    config = make_config("vqbet", input_features=inputs, output_features=outputs, **{**TINY, **fields})
    deltas = {"action": config.action_delta_indices} | {
        k: config.observation_delta_indices for k in config.input_features
    }
    images = list(config.image_features)
    numeric = [k for k in [*config.input_features, "action"] if k not in images]
    cache = FrameCache(ds, numeric, images, deltas)
    batch = to_device(cache.gather(torch.linspace(0, len(cache) - 1, n).long()), torch.device("cpu"), images)
    return config, batch, stats_to_tensors(ds.meta.stats)


def _obs(batch: dict, step: int = -1) -> dict:
    return {k: batch[k][:, step] for k in ("observation.state", "observation.images.top")}


def _step(policy, opt, batch) -> float:
    loss, _ = policy(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def test_overfits_fixed_batch_in_both_phases(dataset):
    torch.manual_seed(0)
    config, batch, stats = _setup(dataset, n=4, n_vqvae_training_steps=20, dropout=0.0, crop_is_random=False)
    policy = make_policy(config, stats).train()
    for p in policy.backbone_parameters():  # a frozen random backbone keeps this CPU test fast
        p.requires_grad_(False)
    opt = policy.make_optimizer(lr=1e-2)
    vq = [_step(policy, opt, batch) for _ in range(20)]
    assert policy.discretized and vq[-1] < 0.9 * vq[0], vq
    gpt = [_step(policy, opt, batch) for _ in range(30)]
    assert min(gpt[-5:]) < gpt[0] / 10, (gpt[0], min(gpt[-5:]))


def test_phase_switch_at_the_configured_step(dataset):
    torch.manual_seed(0)
    config, batch, stats = _setup(dataset)
    policy = make_policy(config, stats).train()
    opt = policy.make_optimizer()
    head = policy.vqbet.action_head
    gpt_before = {k: v.clone() for k, v in policy.vqbet.policy.state_dict().items()}
    codebook_before = head.vqvae_model.vq_layer.layers[0]._codebook.embed.clone()
    for step in range(1, 4):
        assert not policy.discretized
        loss, info = policy(batch)
        assert "recon_l1_error" in info  # the VQ-VAE's loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert int(head.vqvae_model.optimized_steps) == step
    assert policy.discretized and bool(head.vqvae_model.vq_layer.freeze_codebook)
    # Phase 1 trained only the VQ-VAE: the GPT is untouched, the EMA codebook moved.
    assert all(torch.equal(v, policy.vqbet.policy.state_dict()[k]) for k, v in gpt_before.items())
    assert not torch.equal(codebook_before, head.vqvae_model.vq_layer.layers[0]._codebook.embed)
    vq_frozen = {k: v.clone() for k, v in head.vqvae_model.state_dict().items()}
    loss, info = policy(batch)
    assert "offset_loss" in info and "classification_loss" in info
    opt.zero_grad()
    loss.backward()
    opt.step()
    # Phase 2 trains the GPT and heads; the VQ-VAE (weights and codebooks) stays frozen.
    assert not all(torch.equal(v, policy.vqbet.policy.state_dict()[k]) for k, v in gpt_before.items())
    assert all(torch.equal(v, head.vqvae_model.state_dict()[k]) for k, v in vq_frozen.items())


def test_save_load_gives_identical_actions_and_keeps_the_phase(dataset, tmp_path):
    torch.manual_seed(0)
    config, batch, stats = _setup(dataset, n_vqvae_training_steps=2)
    policy = make_policy(config, stats).train()
    opt = policy.make_optimizer()
    for _ in range(4):
        _step(policy, opt, batch)
    save_policy(policy, tmp_path)
    loaded = load_policy(tmp_path)
    assert loaded.discretized and int(loaded.vqbet.action_head.vqvae_model.optimized_steps) == 2
    obs = _obs(batch)
    torch.manual_seed(7)
    a = policy.predict_action_chunk(obs)
    torch.manual_seed(7)
    b = loaded.predict_action_chunk(obs)
    assert a.shape == (8, 3, 2) and torch.equal(a, b)
    # select_action: the first call predicts a chunk, the next action_chunk_size - 1 calls pop it.
    policy.reset()
    torch.manual_seed(7)
    first = [policy.select_action(obs) for _ in range(3)]
    torch.manual_seed(7)
    assert all(torch.equal(loaded.select_action(obs), a) for a in first)
    assert not torch.equal(first[0], first[1])  # the queued chunk, popped step by step


def test_select_action_keeps_n_obs_steps_history(dataset):
    torch.manual_seed(0)
    config, batch, stats = _setup(dataset, n_vqvae_training_steps=1)
    policy = make_policy(config, stats).eval()
    policy.vqbet.action_head.discretize(torch.zeros(2, 4, 2))  # one VQ-VAE step: phase 2
    history = {k: batch[k] for k in ("observation.state", "observation.images.top")}
    torch.manual_seed(3)
    chunk = policy.predict_action_chunk(history)  # (B, n_obs_steps, ...) given explicitly
    policy.reset()
    torch.manual_seed(3)
    actions = [policy.select_action(_obs(batch, 0))]  # fills the history with step 0 and predicts
    policy.reset()
    policy.select_action(_obs(batch, 0))
    policy._queues["action"].clear()  # force a new chunk on the next call, with history [0, 1]
    torch.manual_seed(3)
    actions.append(policy.select_action(_obs(batch, 1)))
    assert torch.equal(actions[1], chunk[:, 0])
    assert not torch.equal(actions[0], actions[1])


def test_optimizer_groups_and_scheduler_follow_lerobot(dataset):
    config, _, stats = _setup(dataset, n_vqvae_training_steps=10, scheduler_warmup_steps=4)
    policy = make_policy(config, stats)
    opt = policy.make_optimizer()
    groups = opt.param_groups
    vq = policy.vqbet.action_head.vqvae_model
    vqvae = [*vq.encoder.parameters(), *vq.decoder.parameters()]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in vqvae}
    vq_settings = (config.optimizer_vqvae_lr, config.optimizer_vqvae_weight_decay)
    assert (groups[1]["lr"], groups[1]["weight_decay"]) == vq_settings
    assert (groups[0]["lr"], groups[0]["weight_decay"]) == (config.optimizer_lr, config.optimizer_weight_decay)
    names = {id(p): n for n, p in policy.named_parameters()}
    no_decay = [names[id(p)] for p in groups[2]["params"]]
    assert groups[2]["weight_decay"] == 0.0 and no_decay == sorted(no_decay)
    assert all(n.startswith("vqbet.policy.") and (n.endswith("bias") or ".ln_" in n or "wpe" in n) for n in no_decay)
    n_all = sum(1 for _ in policy.parameters())
    assert sum(len(g["params"]) for g in groups) == n_all
    assert not isinstance(opt, torch.optim.AdamW) and tuple(groups[0]["betas"]) == (0.95, 0.999)
    sched = policy.make_scheduler(opt, num_steps=30)
    factors = []
    for _ in range(30):
        factors.append(sched.get_last_lr()[0] / config.optimizer_lr)
        opt.step()
        sched.step()
    assert factors[:10] == [1.0] * 10  # constant while the VQ-VAE trains
    assert factors[10:14] == [0.0, 0.25, 0.5, 0.75]  # then warmup
    assert math.isclose(factors[14], 1.0) and factors[29] < factors[20] < 1.0  # then the cosine


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"vision_backbone": "vit_b"}, "vision_backbone"),
        ({"vision_backbone": "resnet34"}, "only 'resnet18'"),
        ({"crop_shape": [64, 64]}, "crop_shape"),
        ({"gpt_hidden_dim": 30, "gpt_n_head": 4}, "gpt_n_head"),
        ({"bet_softmax_temperature": 0.0}, "bet_softmax_temperature"),
        ({"n_vqvae_training_steps": 0}, "n_vqvae_training_steps"),
        ({"gpt_block_size": 4}, "gpt_block_size"),
        ({"pretrained_backbone_weights": "r18.safetensors"}, "use_group_norm"),
        ({"normalization_mapping": {"STATE": "MIN_MAXX"}}, "normalization_mapping"),
    ],
)
def test_bad_config_values_are_named(dataset, fields, message):
    with pytest.raises(PolicyError, match=message):
        _setup(dataset, **fields)


def test_inputs_must_be_state_and_one_camera():
    action = {"action": {"type": "ACTION", "shape": [2]}}
    cam = {"type": "VISUAL", "shape": [3, 32, 32]}
    state = {"observation.state": {"type": "STATE", "shape": [2]}}
    with pytest.raises(PolicyError, match="exactly one camera"):
        make_config("vqbet", input_features=state, output_features=action)
    with pytest.raises(PolicyError, match=r"observation\.state"):
        make_config("vqbet", input_features={"observation.images.top": cam}, output_features=action, crop_shape=None)


@pytest.mark.parametrize("sequentially_select", [False, True])
def test_bf16_autocast_trains_both_phases(dataset, sequentially_select):
    # The trainer's --precision=bf16: codebook distances and EMA updates stay fp32 inside.
    torch.manual_seed(0)
    config, batch, stats = _setup(dataset, n=2, n_vqvae_training_steps=2, sequentially_select=sequentially_select)
    policy = make_policy(config, stats).train()
    opt = policy.make_optimizer()
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    codebook = policy.vqbet.action_head.vqvae_model.vq_layer.layers[0]._codebook
    assert policy.discretized and codebook.embed.dtype == torch.float32


@pytest.mark.parametrize("mode", ["sync", "policy"])
def test_deploy_runtime_runs_vqbet(mode):
    """The policy node's runtime: one inference per action_chunk_size ticks (sync) or the policy's own
    queue and observation history (policy)."""
    import numpy as np

    from apprentice.contract import load_contract
    from apprentice.deploy.runtime import PolicyRuntime, RuntimeConfig
    from apprentice.resources import config_path

    contract = load_contract(config_path("contracts", "omx.yaml"))  # observation.state + one camera
    inputs, outputs = features_from_dataset(contract.features)
    config = make_config("vqbet", input_features=inputs, output_features=outputs, **{**TINY, "crop_shape": [32, 32]})
    stats = {k: {"min": -torch.ones(6), "max": torch.ones(6)} for k in ("observation.state", "action")}
    policy = make_policy(config, stats).eval()
    for _ in range(config.n_vqvae_training_steps):  # into the GPT phase, so acting does not warn
        policy.vqbet.action_head.discretize(torch.zeros(1, 3, 6))
    ms = 1_000_000
    runtime = PolicyRuntime(policy, contract, RuntimeConfig(mode=mode), clock=lambda: 10_000 * ms)
    runtime.enable(True)
    calls = []
    inner = policy.vqbet.forward
    policy.vqbet.forward = lambda *a, **k: calls.append(1) or inner(*a, **k)
    commands = []
    for i in range(6):
        runtime.push("observation.state", (990 + 33 * i) * ms, np.zeros(6, np.float32))
        runtime.push("observation.images.front", (990 + 33 * i) * ms, np.full((480, 640, 3), 100, np.uint8))
        outcome = runtime.step((1000 + 33 * i) * ms)
        assert outcome.reason == "ok", outcome.reason
        commands.append(outcome.command)
    assert len(calls) == 2 and all(c.shape == (6,) for c in commands)  # 6 ticks, chunks of 3
    runtime.close()
