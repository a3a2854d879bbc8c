"""SmolVLA's speed paths: the frozen VLM stored in bf16 (saved as before, trains like fp32), flow times drawn
on the device from LeRobot's Beta(1.5, 1), the static-buffer step (what a CUDA graph records) training like
the eager one, language padding not changing the chunk; on a GPU, the graphed step and the graphed chunk
against eager."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from smolvla_helpers import TASKS, observation, perturbed_policy
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from apprentice.policies import load_policy, save_policy
from apprentice.policies.smolvla import flow_matching
from apprentice.train.step import TrainStep

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")


def _batch(policy, size: int = 4, seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A training batch as the trainer gives it: uint8 frames, task indices into set_tasks' table."""
    g = torch.Generator().manual_seed(seed)
    chunk = policy.config.chunk_size
    return {"observation.state": torch.randn(size, 4, generator=g).to(device),
            "observation.images.top": torch.randint(0, 256, (size, 3, 24, 32), generator=g,
                                                    dtype=torch.uint8).to(device),
            "action": torch.randn(size, chunk, 4, generator=g).to(device),
            "action_is_pad": torch.zeros(size, chunk, dtype=torch.bool).to(device),
            "task_index": (torch.arange(size) % 2).to(device)}


def _losses(policy, batches, *, device="cpu", bf16=False, static=False, capture=False, lr=1e-3) -> list[float]:
    opt = policy.make_optimizer(lr=lr, fused=device == "cuda")
    step = TrainStep(policy, [p for p in policy.parameters() if p.requires_grad], opt, device=torch.device(device),
                     image_keys=["observation.images.top"], grad_clip_norm=10.0, bf16=bf16, static=static,
                     capture=capture)
    out = []
    for batch in batches:
        step(lambda b=batch: b)
        out.append(float(step.loss_sum))
        step.loss_sum.zero_()
    assert step.captured == capture, step.fallback
    return out


def test_frozen_vlm_in_bf16_trains_like_fp32_and_saves_lerobots_keys_and_dtypes(vlm_dir, tmp_path):
    reference = perturbed_policy(vlm_dir)
    before = {k: v.dtype for k, v in reference.state_dict().items()}
    policy = perturbed_policy(vlm_dir)
    policy.store_frozen_in(torch.bfloat16)
    for name, p in policy.named_parameters():
        expected = torch.bfloat16 if ".vlm." in name else torch.float32  # train_expert_only: the whole VLM
        assert p.dtype == expected, name
        assert p.requires_grad == (expected == torch.float32), name
    assert {k: v.dtype for k, v in policy.state_dict().items()} == before
    save_policy(policy, tmp_path / "ckpt")
    saved = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    save_policy(reference, tmp_path / "ref")
    assert {k: v.dtype for k, v in saved.items()} == {
        k: v.dtype for k, v in load_file(str(tmp_path / "ref" / "model.safetensors")).items()}
    key = "model.vlm_with_expert.vlm.model.text_model.layers.0.mlp.up_proj.weight"
    assert saved[key].dtype == torch.float32 and torch.equal(saved[key], policy.state_dict()[key])
    reloaded = load_policy(tmp_path / "ckpt").model.vlm_with_expert.vlm.model.text_model
    assert reloaded.layers[0].mlp.up_proj.weight.dtype == torch.float32

    # The same three steps (same random draws) in fp32 and with the bf16-stored VLM under bf16 autocast.
    for p in (reference, policy):
        p.set_tasks(TASKS)
        p.train()
    batches = [_batch(reference, seed=i) for i in range(3)]
    torch.manual_seed(3)
    fp32 = _losses(reference, batches)
    torch.manual_seed(3)
    bf16 = _losses(policy, batches, bf16=True)
    assert fp32[0] != fp32[-1]
    assert bf16 == pytest.approx(fp32, rel=3e-2)
    # Inference without autocast still runs on the mixed-dtype model (inputs cast to each layer's dtype).
    noise = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    a = reference.predict_action_chunk(observation(task=list(TASKS)), noise=noise)
    b = policy.predict_action_chunk(observation(task=list(TASKS)), noise=noise)
    assert b.dtype == torch.float32 and torch.allclose(a, b, atol=0.1)


def test_only_the_vision_tower_in_bf16_when_the_vlm_trains(vlm_dir):
    policy = perturbed_policy(vlm_dir, train_expert_only=False).eval()
    noise = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    before = policy.predict_action_chunk(observation(task=list(TASKS)), noise=noise)
    policy.store_frozen_in(torch.bfloat16)
    cast = {n for n, p in policy.named_parameters() if p.dtype == torch.bfloat16}
    assert cast and all(".vision_model." in n for n in cast)
    assert all(p.dtype == torch.float32 for p in policy.model.vlm_with_expert.vlm.model.connector.parameters())
    after = policy.predict_action_chunk(observation(task=list(TASKS)), noise=noise)
    assert torch.allclose(before, after, atol=0.1)


def test_flow_times_follow_lerobots_beta_on_the_device():
    torch.manual_seed(0)
    t = flow_matching.sample_time(200_000, torch.device("cpu"))
    assert t.device.type == "cpu" and t.dtype == torch.float32
    assert float(t.min()) >= 0.001 and float(t.max()) <= 1.0
    assert float(t.mean()) == pytest.approx(0.6 * 0.999 + 0.001, abs=3e-3)  # E[Beta(1.5, 1)] = 0.6
    below = float(((t - 0.001) / 0.999 < 0.5).float().mean())
    assert below == pytest.approx(0.5**1.5, abs=3e-3)  # its CDF x^1.5


@pytest.mark.parametrize("ckpt", [False, True], ids=["plain", "grad_checkpointing"])
def test_static_buffer_step_trains_like_the_eager_step(vlm_dir, ckpt):
    """The step a CUDA graph records (static buffers, tensor lr, device-side loss) on CPU: same losses, also
    with gradient checkpointing (--cuda_graphs=true --grad_checkpointing=true)."""
    runs = []
    for static in (False, True):
        policy = perturbed_policy(vlm_dir).train()
        policy.set_grad_checkpointing(ckpt)
        policy.set_tasks(TASKS)
        torch.manual_seed(5)
        runs.append(_losses(policy, [_batch(policy, seed=i) for i in range(3)], static=static))
    assert runs[0] == pytest.approx(runs[1], rel=1e-5, abs=1e-6)
    assert runs[0][0] != runs[0][-1]


class _CaptureSafety(TorchDispatchMode):
    """Records every op that would break (or silently freeze) a CUDA graph when the model runs on the meta
    device: one reading a CPU tensor (a host-to-device copy, or a CPU value baked into the graph), and a
    host read-back (.item(), nonzero, boolean-mask indexing: on meta they raise, as they would sync on CUDA)."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat, _ = tree_flatten((args, kwargs or {}))
        if any(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in flat):
            self.bad.append(f"{func} reads a CPU tensor")
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default):
            self.bad.append(f"{func} reads a value back to the host")
        return func(*args, **(kwargs or {}))


def test_training_step_and_sampler_touch_no_cpu_tensor_and_never_sync(vlm_dir):
    """What a CUDA graph records — the loss, its backward, and the chunk sampler — checked without a GPU."""
    policy = perturbed_policy(vlm_dir)
    policy.set_tasks(TASKS)
    policy.store_frozen_in(torch.bfloat16)
    policy.to("meta").train()
    batch = {k: v.to("meta") for k, v in _batch(policy).items()}
    batch["observation.images.top"] = batch["observation.images.top"].float()
    with _CaptureSafety() as check:
        loss, _ = policy(batch)
        loss.backward()
    assert check.bad == []
    policy.eval()
    width, height = policy.config.resize_imgs_with_padding
    with torch.no_grad(), _CaptureSafety() as check:
        chunk = policy.model.sample(
            [torch.zeros(1, 3, height, width, device="meta")], [torch.ones(1, dtype=torch.bool, device="meta")],
            torch.zeros(1, 16, dtype=torch.long, device="meta"), torch.ones(1, 16, dtype=torch.bool, device="meta"),
            torch.zeros(1, 8, device="meta"), torch.zeros(1, 5, 8, device="meta"))
    assert check.bad == [] and chunk.shape == (1, 5, 8)
    # The checker sees what transformers' own vision forward did (a CPU patch mask copied over, a mask test).
    with _CaptureSafety() as check, pytest.raises(RuntimeError, match="meta"):
        mask = torch.ones(1, 4, 4).to("meta")
        bool(mask.all())
    assert [b.split(" ", 1)[1] for b in check.bad] == ["reads a CPU tensor", "reads a value back to the host"]


def test_language_padded_to_max_length_gives_the_same_chunk(vlm_dir):
    """The graphed sampler pads the tokens to tokenizer_max_length (one graph for every task)."""
    policy = perturbed_policy(vlm_dir).eval()
    inputs = policy._inputs(policy.normalizer.normalize_batch(observation(task=list(TASKS))))
    images, masks, tokens, token_mask, state = inputs
    padded, padded_mask = policy._pad_language(tokens, token_mask)
    assert padded.shape[1] == policy.config.tokenizer_max_length > tokens.shape[1]
    noise = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = policy.model.sample(images, masks, tokens, token_mask, state, noise)
        b = policy.model.sample(images, masks, padded, padded_mask, state, noise)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ CUDA
@cuda
@pytest.mark.parametrize("ckpt", [False, True], ids=["plain", "grad_checkpointing"])
def test_cuda_graph_train_step_matches_eager_on_cuda(vlm_dir, monkeypatch, ckpt):
    """The trainer's --cuda_graphs=true path for SmolVLA (bf16 autocast, bf16-stored VLM, fused capturable
    AdamW), also with --grad_checkpointing=true: the replayed graph gives the eager losses. Noise and times
    are fixed tensors here so both runs see the same draws whatever the generator does under replay."""
    batches = None
    runs = []
    fixed: dict[str, torch.Tensor] = {}
    forward = flow_matching.SmolVLAFlowMatching.forward

    def fixed_draws(self, *args, noise=None, time=None):
        actions = args[-1]
        if "noise" not in fixed:
            g = torch.Generator(device="cuda").manual_seed(0)
            fixed["noise"] = torch.randn(actions.shape, device="cuda", generator=g)
            fixed["time"] = torch.rand(actions.shape[0], device="cuda", generator=g)
        return forward(self, *args, noise=fixed["noise"], time=fixed["time"])

    monkeypatch.setattr(flow_matching.SmolVLAFlowMatching, "forward", fixed_draws)
    for capture in (False, True):
        policy = perturbed_policy(vlm_dir).to("cuda").train()
        policy.set_grad_checkpointing(ckpt)
        policy.set_tasks(TASKS)
        policy.store_frozen_in(torch.bfloat16)
        batches = batches or [_batch(policy, seed=i, device="cuda") for i in range(8)]
        runs.append(_losses(policy, batches, device="cuda", bf16=True, capture=capture))
    assert runs[0][0] != runs[0][-1]
    assert runs[1] == pytest.approx(runs[0], rel=1e-2, abs=1e-4)


@cuda
def test_cuda_graph_train_step_draws_new_noise_on_every_replay(vlm_dir):
    policy = perturbed_policy(vlm_dir).to("cuda").train()
    policy.set_tasks(TASKS)
    batch = _batch(policy, device="cuda")
    losses = _losses(policy, [batch] * 7, device="cuda", bf16=True, capture=True, lr=1e-12)
    assert len(set(losses[-3:])) == 3  # lr ~0: only new noise and times change the loss


@cuda
def test_cuda_graph_chunk_equals_the_eager_chunk(vlm_dir):
    """The graphed sampler (TF32 matmuls, tokens padded to tokenizer_max_length) gives the eager chunk for the
    same noise, reads new inputs on every replay, and serves every task from one graph."""
    policy = perturbed_policy(vlm_dir).to("cuda").eval()
    outs = {}
    for precision in ("fp32", "bf16"):
        for graphed in (False, True):
            policy.cuda_graphs = graphed
            for seed, task in ((1, list(TASKS)), (2, [TASKS[1], "move left"])):
                noise = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(seed)).cuda()
                obs = {k: v.cuda() if isinstance(v, torch.Tensor) else v
                       for k, v in observation(task=task, seed=seed).items()}
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    outs[precision, graphed, seed] = policy.predict_action_chunk(obs, noise=noise)
    assert policy.chunk_graph.captures == 2  # one per precision: both tasks pad to one signature
    for seed in (1, 2):
        torch.testing.assert_close(outs["fp32", True, seed], outs["fp32", False, seed], rtol=1e-2, atol=1e-2)
        torch.testing.assert_close(outs["bf16", True, seed], outs["bf16", False, seed], rtol=5e-2, atol=5e-2)
    assert (outs["fp32", True, 1] - outs["fp32", True, 2]).abs().max() > 0.1  # the replay read the new inputs


@pytest.mark.parametrize("image_size,patch,pixels", [(32, 8, 32), (48, 8, 48), (42, 6, 42)])
def test_graph_safe_vision_embeddings_equal_transformers_for_a_full_patch_grid(image_size, patch, pixels):
    """Our device-only position ids (no mask indexing) give the stock embeddings' output, power-of-two grids
    and others (6x6, 7x7 patches), so a checkpoint sees the same image tokens either way."""
    from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig
    from transformers.models.smolvlm.modeling_smolvlm import SmolVLMVisionEmbeddings

    from apprentice.policies.smolvla.vlm_with_expert import vision_embeddings

    torch.manual_seed(0)
    embeddings = SmolVLMVisionEmbeddings(SmolVLMVisionConfig(hidden_size=16, image_size=image_size, patch_size=patch))
    with torch.no_grad():
        embeddings.position_embedding.weight.normal_()
    images = torch.randn(2, 3, pixels, pixels)
    grid = torch.ones(2, pixels // patch, pixels // patch, dtype=torch.bool)
    expected = embeddings(pixel_values=images, patch_attention_mask=grid)
    assert torch.equal(vision_embeddings(embeddings, images), expected)


@cuda
def test_cuda_graph_rtc_chunk_equals_the_eager_guided_chunk(vlm_dir):
    """RTC guidance replays from its own graph (prefix and weights as static inputs): the eager guided chunk
    for the same noise, a new prefix and delay read on every replay, full_jacobian still eager."""
    from apprentice.policies.rtc import RTCConfig, RTCGuidance

    policy = perturbed_policy(vlm_dir).to("cuda").eval()
    obs = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in observation(task=list(TASKS)).items()}
    noise = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(3)).cuda()
    outs = {}
    for graphed in (False, True):
        policy.cuda_graphs = graphed
        for delay, scale in ((1, 0.5), (3, -0.5)):
            prefix = torch.full((4, 4), scale, device="cuda")
            rtc = RTCGuidance(prefix, delay, RTCConfig(execution_horizon=4))
            outs[graphed, delay] = policy.predict_action_chunk(obs, noise=noise, rtc=rtc)
    assert policy.chunk_graph.captures == 1  # both prefixes and delays: one graph
    for delay in (1, 3):
        torch.testing.assert_close(outs[True, delay], outs[False, delay], rtol=1e-2, atol=1e-2)
    assert (outs[True, 1] - outs[True, 3]).abs().max() > 1e-3  # the replay read the new prefix
    full = RTCGuidance(torch.zeros(4, 4, device="cuda"), 1, RTCConfig(full_jacobian=True))
    policy.predict_action_chunk(obs, noise=noise, rtc=full)
    assert policy.chunk_graph.captures == 1  # full_jacobian ran eagerly
