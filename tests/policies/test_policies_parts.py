"""Building blocks: ResNet-18 names, normalization formulas, noise schedulers, temporal ensembling."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from apprentice.policies import Normalizer, PolicyError, PolicyFeature
from apprentice.policies.act.modeling_act import TemporalEnsembler
from apprentice.policies.diffusion.scheduler import NoiseScheduler, make_betas
from apprentice.policies.resnet import ResNet18, load_backbone_weights


def _torchvision_names() -> list[str]:
    """torchvision.models.resnet18().state_dict() keys, spelled out (no torchvision needed)."""
    names = ["conv1.weight", *[f"bn1.{s}" for s in ("weight", "bias", "running_mean", "running_var",
                                                     "num_batches_tracked")]]
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            names += [f"{p}.conv1.weight", f"{p}.conv2.weight"]
            for bn in ("bn1", "bn2"):
                names += [f"{p}.{bn}.{s}" for s in ("weight", "bias", "running_mean", "running_var",
                                                    "num_batches_tracked")]
            if layer > 1 and block == 0:
                names += [f"{p}.downsample.0.weight"] + [f"{p}.downsample.1.{s}" for s in (
                    "weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    return names


def test_resnet_uses_torchvision_names_and_loads_its_weights(tmp_path):
    assert sorted(ResNet18("batch").state_dict()) == sorted(_torchvision_names())
    # An ImageNet-style file (with the classifier head) loads into the frozen-norm trunk ACT uses.
    donor = ResNet18("batch")
    state = {k: torch.randn_like(v.float()) if v.is_floating_point() else v for k, v in donor.state_dict().items()}
    state |= {"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    save_file(state, str(tmp_path / "resnet18.safetensors"))
    trunk = ResNet18("frozen")
    load_backbone_weights(trunk, str(tmp_path / "resnet18.safetensors"))
    assert torch.equal(trunk.layer3[0].downsample[1].running_var, state["layer3.0.downsample.1.running_var"])
    with pytest.raises(PolicyError, match="never downloads"):
        load_backbone_weights(trunk, "ResNet18_Weights.IMAGENET1K_V1")


def test_normalizer_matches_lerobot_formulas():
    feats = {"s": PolicyFeature("STATE", (2,)), "a": PolicyFeature("ACTION", (2,))}
    stats = {"s": {"mean": torch.tensor([1.0, 2.0]), "std": torch.tensor([2.0, 0.0])},
             "a": {"min": torch.tensor([0.0, 5.0]), "max": torch.tensor([10.0, 5.0])}}
    norm = Normalizer(feats, {"STATE": "MEAN_STD", "ACTION": "MIN_MAX"}, stats)
    x = torch.tensor([[3.0, 2.0]])
    torch.testing.assert_close(norm.normalize("s", x), torch.tensor([[1.0, 0.0]]))
    a = torch.tensor([[5.0, 5.0]])
    torch.testing.assert_close(norm.normalize("a", a), torch.tensor([[0.0, -1.0]]))  # zero range -> eps, -1
    torch.testing.assert_close(norm.unnormalize("a", norm.normalize("a", a)), a)
    with pytest.raises(PolicyError, match="needs stats"):
        Normalizer(feats, {"STATE": "MIN_MAX"}, {"s": {"mean": torch.zeros(2)}})


def test_cosine_betas_and_ddpm_ddim_steps():
    betas = make_betas("squaredcos_cap_v2", 100, 1e-4, 0.02)
    alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert betas[0].item() == pytest.approx(1 - alpha_bar(0.01) / alpha_bar(0.0), rel=1e-6)
    assert betas.max().item() == pytest.approx(0.999)  # capped, as diffusers caps it
    x0 = torch.full((1, 4, 2), 0.5)
    noise = torch.randn(1, 4, 2)
    for kind in ("DDPM", "DDIM"):
        sched = NoiseScheduler(kind, 100, "squaredcos_cap_v2", 1e-4, 0.02, "epsilon", True, 1.0)
        sched.set_timesteps(10)
        assert sched.timesteps.tolist() == list(range(90, -1, -10))
        sample = sched.add_noise(x0, noise, torch.tensor([90]))
        # With the true noise as the model output every step lands back on x0's trajectory; at t=0 on x0.
        for t in sched.timesteps.tolist():
            eps = (sample - sched.alphas_cumprod[t].sqrt() * x0) / (1 - sched.alphas_cumprod[t]).sqrt()
            sample = sched.step(eps, t, sample, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(sample, x0, atol=1e-4, rtol=0)


def test_temporal_ensembler_weights_older_chunks():
    ens = TemporalEnsembler(coeff=0.0, chunk_size=3)  # coeff 0: plain average of every prediction
    first = ens.update(torch.tensor([[[0.0], [1.0], [2.0]]]))
    second = ens.update(torch.tensor([[[10.0], [20.0], [30.0]]]))
    assert first.item() == 0.0 and second.item() == pytest.approx((1.0 + 10.0) / 2)
    third = ens.update(torch.tensor([[[100.0], [200.0], [300.0]]]))
    assert third.item() == pytest.approx((2.0 + 20.0 + 100.0) / 3)


def test_ddim_sample_prediction_takes_its_noise_from_the_unclipped_estimate():
    """diffusers' DDIMScheduler.step: pred_epsilon from the raw x0 prediction, then x0 is clipped."""
    sched = NoiseScheduler("DDIM", 100, "squaredcos_cap_v2", 1e-4, 0.02, "sample", True, 1.0)
    sched.set_timesteps(10)
    sample, x0_raw, t = torch.full((1, 2, 1), 0.3), torch.full((1, 2, 1), 3.0), 50  # x0 outside [-1, 1]
    acp_t, acp_prev = sched.alphas_cumprod[t].item(), sched.alphas_cumprod[t - 10].item()
    eps = (sample - acp_t**0.5 * x0_raw) / (1 - acp_t) ** 0.5
    expected = acp_prev**0.5 * x0_raw.clamp(-1, 1) + (1 - acp_prev) ** 0.5 * eps
    torch.testing.assert_close(sched.step(x0_raw, t, sample), expected)


def test_constant_lr_schedule_has_no_warmup():
    """diffusers' get_scheduler("constant") ignores num_warmup_steps; only "cosine" warms up."""
    from apprentice.policies.diffusion import POLICY

    for name, first in (("constant", 1.0), ("cosine", 0.0)):
        cfg = POLICY.config_class(scheduler_name=name, scheduler_warmup_steps=10)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = POLICY.make_scheduler(type("P", (), {"config": cfg})(), opt, num_steps=100)
        assert scheduler.lr_lambdas[0](0) == first  # lr factor at step 0
