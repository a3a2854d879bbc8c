"""Real-time chunking on a small flow-matching model trained here: the committed prefix is kept."""

from __future__ import annotations

import pytest
import torch
from rtc_toy import CHUNK, DIM, train_toy

from apprentice.policies import PolicyError
from apprentice.policies.rtc import RTCConfig, RTCGuidance, guidance_weight, guided_denoise, prefix_weights


@pytest.fixture(scope="module")
def toy():
    return train_toy()


def test_plain_sampling_finds_both_modes_and_rtc_keeps_the_committed_one(toy) -> None:
    torch.manual_seed(1)
    noise = torch.randn(64, CHUNK, DIM)
    with torch.no_grad():
        plain = guided_denoise(toy, noise, num_steps=10)
    signs = plain.mean(dim=(1, 2)).sign()
    # The model learnt both modes: unguided samples land on each of them.
    assert 0.2 < (signs > 0).float().mean() < 0.8
    assert (plain.abs() - 1).abs().mean() < 0.2
    # The previous chunk is in the +1 mode; 3 of its actions are committed (executed during inference).
    previous = torch.ones(CHUNK, DIM)
    rtc = RTCGuidance(previous, inference_delay=3, config=RTCConfig(execution_horizon=6))
    with torch.inference_mode():  # lerobot's guidance needs no autograd
        guided = guided_denoise(toy, noise, num_steps=10, rtc=rtc)
    assert (guided[:, :3] - previous[:3]).abs().max() < 0.15, "the committed prefix must be kept"
    assert (guided.mean(dim=(1, 2)) > 0).all(), "no guided chunk may jump to the other mode"
    # Plain sampling from the same noise jumps modes at the boundary for the seeds that went to -1.
    jump_plain = (plain[:, 0] - previous[0]).abs().max()
    jump_rtc = (guided[:, 0] - previous[0]).abs().max()
    assert jump_plain > 1.5 and jump_rtc < 0.15


def test_disabled_or_without_prefix_is_plain_euler(toy) -> None:
    noise = torch.randn(4, CHUNK, DIM)
    with torch.no_grad():
        plain = guided_denoise(toy, noise, 8)
        off = guided_denoise(toy, noise, 8, RTCGuidance(torch.ones(CHUNK, DIM), 3, RTCConfig(enabled=False)))
        empty = guided_denoise(toy, noise, 8, RTCGuidance(None, 3))
        # plain Euler written out: x <- x - v / n from t = 1 down to t = 1/n
        x = noise
        for k in range(8):
            x = x - toy(x, torch.full((4,), 1 - k / 8)) / 8
    assert torch.equal(off, plain) and torch.equal(empty, plain)
    assert torch.allclose(plain, x, atol=1e-6)


def test_prefix_weight_schedules() -> None:
    linear = prefix_weights("LINEAR", 2, 6, 10)
    assert linear.tolist()[:2] == [1.0, 1.0] and linear[6:].eq(0).all()
    assert torch.all(linear[1:7].diff() < 0) and 0 < linear[5] < linear[2] < 1  # fades between delay and horizon
    exp = prefix_weights("EXP", 2, 6, 10)
    assert exp[:2].eq(1).all() and torch.all(exp[2:6] < linear[2:6]) and exp[6:].eq(0).all()
    assert prefix_weights("ZEROS", 2, 6, 10).tolist() == [1.0] * 2 + [0.0] * 8
    assert prefix_weights("ONES", 2, 6, 10).tolist() == [1.0] * 6 + [0.0] * 4
    # the delay past the horizon is clipped to it; a horizon past the chunk stops at its end
    assert prefix_weights("LINEAR", 8, 6, 10).tolist() == [1.0] * 6 + [0.0] * 4
    assert prefix_weights("LINEAR", 0, 20, 4).shape == (4,)


def test_guidance_weight_is_clipped_near_noise() -> None:
    w = guidance_weight(torch.tensor([1.0, 0.9, 0.5, 0.1]), max_guidance_weight=20.0)
    assert w[0] == 20.0  # infinite at pure noise: clipped
    assert w[2] == pytest.approx(2.0)  # t = 0.5: ((1 - tau)^2 + tau^2) / (tau (1 - tau)) = 0.5 / 0.25
    assert w[1] == pytest.approx(0.82 / 0.09) and w[3] == pytest.approx(w[1])
    assert guidance_weight(torch.tensor([0.9]), 5.0)[0] == 5.0


def test_bad_config_is_named() -> None:
    with pytest.raises(PolicyError, match="prefix_attention_schedule"):
        RTCConfig(prefix_attention_schedule="cubic")
    with pytest.raises(PolicyError, match="max_guidance_weight"):
        RTCConfig(max_guidance_weight=0)
    with pytest.raises(PolicyError, match="inference_delay"):
        RTCGuidance(torch.ones(2, 2), -1)


def test_full_jacobian_pulls_toward_the_prefix_and_needs_autograd(toy) -> None:
    torch.manual_seed(1)
    noise = torch.randn(64, CHUNK, DIM)
    previous = torch.ones(CHUNK, DIM)
    full = RTCGuidance(previous, 3, RTCConfig(execution_horizon=6, full_jacobian=True))
    with torch.no_grad():
        plain = guided_denoise(toy, noise, 10)
        guided = guided_denoise(toy, noise, 10, full)
    plain_err = (plain[:, :3] - previous[:3]).abs().mean()
    assert (guided[:, :3] - previous[:3]).abs().mean() < 0.5 * plain_err
    assert (guided.mean(dim=(1, 2)) > 0).float().mean() > (plain.mean(dim=(1, 2)) > 0).float().mean()
    with torch.inference_mode(), pytest.raises(PolicyError, match="no_grad"):
        guided_denoise(toy, noise[:1], 2, full)


def test_prepared_guidance_is_the_per_step_guidance_on_tensors_alone(toy) -> None:
    """`prepare` (what a CUDA graph records) gives the chunk the guidance built at every step gives; traces
    and full_jacobian need the host or autograd, so they are not graphable."""
    torch.manual_seed(2)
    noise = torch.randn(8, CHUNK, DIM)
    previous = torch.linspace(-1, 1, (CHUNK - 2) * DIM).view(CHUNK - 2, DIM)  # shorter than the chunk: padded
    rtc = RTCGuidance(previous, 2, RTCConfig(execution_horizon=5, max_guidance_weight=7.0))
    prepared = rtc.prepare(noise)
    assert prepared.prefix.shape == noise.shape and prepared.prefix[:, CHUNK - 2 :].eq(0).all()
    assert prepared.weights.flatten().tolist()[:2] == [1.0, 1.0] and prepared.weights[0, 5:].eq(0).all()
    with torch.no_grad():
        per_step = guided_denoise(toy, noise, 6, RTCGuidance(previous, 2, RTCConfig(execution_horizon=5,
                                                                                    max_guidance_weight=7.0,
                                                                                    debug=True)))
        from_tensors = guided_denoise(toy, noise, 6, prepared)
        plain = guided_denoise(toy, noise, 6)
    torch.testing.assert_close(from_tensors, per_step)
    assert (from_tensors - plain).abs().max() > 0.05  # it did guide
    assert rtc.graphable
    assert not RTCGuidance(previous, 2, RTCConfig(debug=True)).graphable
    assert not RTCGuidance(previous, 2, RTCConfig(full_jacobian=True)).graphable
