"""Tiny ACT and Diffusion overfit one fixed batch of a real (written-to-disk) dataset on CPU."""

from __future__ import annotations

import torch
from train_helpers import TINY_ACT, TINY_DIFFUSION

from apprentice.dataset import LeRobotDataset
from apprentice.policies import features_from_dataset, make_config, make_policy, stats_to_tensors
from apprentice.train.data import FrameCache, to_device


def _fixed_batch(root, config, n: int = 8):
    ds = LeRobotDataset(root)
    deltas = {"action": config.action_delta_indices}
    if config.observation_delta_indices:
        deltas |= {k: config.observation_delta_indices for k in config.input_features}
    images = list(config.image_features)
    numeric = [k for k in [*config.input_features, "action"] if k not in images]
    cache = FrameCache(ds, numeric, images, deltas, getattr(config, "drop_n_last_frames", 0))
    ids = torch.linspace(0, len(cache) - 1, n).long()
    return to_device(cache.gather(ids), torch.device("cpu"), images), stats_to_tensors(ds.meta.stats)


def _overfit(kind: str, tiny: dict, root, steps: int, lr: float, reseed: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    ds = LeRobotDataset(root)
    inputs, outputs = features_from_dataset(ds.features)
    config = make_config(kind, input_features=inputs, output_features=outputs, optimizer_lr=lr, **tiny)
    batch, stats = _fixed_batch(root, config)
    policy = make_policy(config, stats).train()
    # A frozen (random) backbone keeps this CPU test fast; the loop tests train the backbone too.
    for p in policy.backbone_parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        if reseed:  # diffusion: the same noise and timesteps every step, so the target is fixed
            torch.manual_seed(1)
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses[0], min(losses[-5:])


def test_act_overfits_fixed_batch(tiny_dataset):
    tiny = {**TINY_ACT, "dropout": 0.0}
    first, last = _overfit("act", tiny, tiny_dataset, steps=40, lr=2e-3, reseed=True)
    assert last < first / 10, (first, last)


def test_diffusion_overfits_fixed_batch(tiny_dataset):
    first, last = _overfit("diffusion", TINY_DIFFUSION, tiny_dataset, steps=40, lr=3e-3, reseed=True)
    assert last < first / 10, (first, last)
