"""VQ-BeT's captured step (`--cuda_graphs`), tested on its graph-safe code path on a CPU: it trains exactly
like the eager step through the VQ-VAE -> GPT phase switch, switches at the configured step with one
warm-up + capture per phase, and reads nothing back from the device in either phase."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from vqbet_helpers import TINY, tiny_flags, write_tiny_dataset

from apprentice.dataset import LeRobotDataset
from apprentice.policies import features_from_dataset, make_config, make_policy, stats_to_tensors
from apprentice.train.data import FrameCache, SampleOrder, to_device
from apprentice.train.step import TrainStep

CPU = torch.device("cpu")
STEPS = 6  # TINY: n_vqvae_training_steps=3, so steps 1-3 train the VQ-VAE and 4-6 the GPT


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, torch.Tensor]]]:
    root = write_tiny_dataset(tmp_path_factory.mktemp("vqbet-graph") / "tiny")
    config = _config(root)
    deltas = {"action": config.action_delta_indices}
    deltas |= {k: config.observation_delta_indices for k in config.input_features}
    images = list(config.image_features)
    numeric = [k for k in [*config.input_features, "action"] if k not in images]
    cache = FrameCache(LeRobotDataset(root), numeric, images, deltas)
    order = SampleOrder(len(cache), 4, seed=0).batches()
    return root, [cache.gather(next(order)) for _ in range(STEPS)]


def _config(root: Path, **fields: object):
    inputs, outputs = features_from_dataset(LeRobotDataset(root).features)
    return make_config("vqbet", input_features=inputs, output_features=outputs, **{**TINY, **fields})


def _policy(root: Path):
    torch.manual_seed(0)
    return make_policy(_config(root), stats_to_tensors(LeRobotDataset(root).meta.stats)).train()


def _train(root: Path, batches: list, static: bool, warmup: int = 2):
    """STEPS steps through TrainStep with lerobot's schedule; per step: loss, phase before it, VQ-VAE steps."""
    policy = _policy(root)
    opt = policy.make_optimizer()
    sched = policy.make_scheduler(opt, STEPS)
    step = TrainStep(policy, [p for p in policy.parameters() if p.requires_grad], opt, device=CPU,
                     image_keys=list(policy.config.image_features), grad_clip_norm=10.0, static=static, warmup=warmup)
    torch.manual_seed(7)  # dropout, random crop, code sampling: the same draws on both paths
    it = iter(batches)
    rows = []
    for _ in batches:
        phase = policy.train_phase()
        step(it.__next__)
        sched.step()
        head = policy.vqbet.action_head
        rows.append((float(step.loss_sum), phase, int(head.vqvae_model.optimized_steps), head._steps))
        step.loss_sum.zero_()
    return rows, {k: v.detach().clone() for k, v in policy.state_dict().items()}, step


def test_graph_safe_step_trains_like_the_eager_one_through_the_phase_switch(batches):
    root, data = batches
    eager, eager_state, _ = _train(root, data, static=False)
    graph, graph_state, step = _train(root, data, static=True)
    # The phase switch at n_vqvae_training_steps on both paths; the host mirror of the step count agrees
    # with the device buffer (a graph-safe forward must not count, or a replay would skip the count).
    assert [r[1] for r in graph] == ["vqvae"] * 3 + ["gpt"] * 3 == [r[1] for r in eager]
    assert [r[2] for r in graph] == [1, 2, 3, 3, 3, 3] == [r[3] for r in graph]
    assert step.phase == "gpt" and step._phase_steps == 3
    assert [r[0] for r in graph] == pytest.approx([r[0] for r in eager], rel=1e-5, abs=1e-6)
    assert eager[3][0] != eager[5][0]  # the GPT phase trained (its loss moved)
    for key in eager_state:
        torch.testing.assert_close(graph_state[key], eager_state[key], rtol=1e-4, atol=2e-4, msg=key)
    assert torch.equal(graph_state["vqbet.action_head.vqvae_model.discretized"], torch.tensor(True))


def test_each_phase_warms_up_again_before_its_capture(batches):
    """The warm-up count restarts at the switch: with warmup=2, steps 1-2 and 4-5 are the eager warm-ups
    (the points where a CUDA graph is captured), step 3 and 6 would be replays."""
    root, data = batches
    policy = _policy(root)
    step = TrainStep(policy, [p for p in policy.parameters() if p.requires_grad], policy.make_optimizer(), device=CPU,
                     image_keys=list(policy.config.image_features), grad_clip_norm=10.0, static=True, warmup=2)
    it = iter(data)
    seen = []
    for _ in data:
        step(it.__next__)
        seen.append((step.phase, step._phase_steps))
    assert seen == [("vqvae", 1), ("vqvae", 2), ("vqvae", 3), ("gpt", 1), ("gpt", 2), ("gpt", 3)]


class _HostReads(TorchFunctionMode):
    """Records what cannot run inside a CUDA graph: reading a tensor on the host, ops whose output size
    depends on data, and random draws from the CPU generator (frozen at capture in a GPU run)."""

    READS = frozenset({torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__int__,
             torch.Tensor.__float__, torch.Tensor.numpy, torch.Tensor.cpu, torch.Tensor.nonzero, torch.nonzero,
             torch.unique, torch.Tensor.unique, torch.masked_select, torch.Tensor.masked_select})
    DRAWS = frozenset({torch.randint, torch.rand, torch.randn, torch.randperm})

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.READS or (func in self.DRAWS and "device" not in kwargs):
            self.found.append(getattr(func, "__name__", str(func)))
        if func is torch.Tensor.__getitem__ and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in _flat(args[1:])
        ):
            self.found.append("boolean index")
        return func(*args, **kwargs)


def _flat(items) -> list:
    out = []
    for item in items:
        out.extend(_flat(item) if isinstance(item, tuple | list) else [item])
    return out


@pytest.mark.parametrize("graph_safe", [False, True])
def test_graph_safe_forward_and_backward_read_nothing_back(batches, graph_safe):
    root, data = batches
    policy = _policy(root)
    policy.set_graph_safe(graph_safe)
    policy.train_phase()  # reads the saved phase once, before any step (TrainStep asks it first, too)
    found = []
    for raw in data[:5]:  # 3 VQ-VAE steps, then GPT steps
        batch = to_device(raw, CPU, list(policy.config.image_features))
        with _HostReads() as mode:
            loss, _ = policy(batch)
            loss.backward()
        found += mode.found
        policy.step_done()
        policy.zero_grad(set_to_none=True)
    assert policy.discretized
    if graph_safe:
        assert found == []
    else:  # the eager step draws its crop on the CPU generator as LeRobot does (and the check sees it)
        assert "randint" in found and "item" in found


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")


@cuda
def test_cuda_graphs_train_both_phases_and_switch_at_the_configured_step(batches, tmp_path):
    """`apprentice train --cuda_graphs=true`: one graph per phase, the switch at n_vqvae_training_steps=3."""
    from safetensors.torch import load_file

    from apprentice.train.cli import main
    from apprentice.train.reports import read_compile_report, read_metrics

    root, _ = batches
    out = tmp_path / "run"
    flags = [*tiny_flags(), f"--dataset.root={root}", f"--output_dir={out}", "--batch_size=4", "--steps=12",
             "--log_freq=1", "--save_freq=3", "--policy.device=cuda", "--seed=3", "--cuda_graphs=true"]
    assert main(flags) == 0
    report = read_compile_report(out)
    assert report["captured"] and report["captures"] == 2, report
    at = {s: load_file(str(out / "checkpoints" / f"{s:06d}" / "pretrained_model" / "model.safetensors"))
          for s in (3, 6, 12)}
    steps = "vqbet.action_head.vqvae_model.optimized_steps"
    assert [int(at[s][steps]) for s in (3, 6, 12)] == [3, 3, 3]
    assert bool(at[3]["vqbet.action_head.vqvae_model.discretized"])
    gpt = [k for k in at[3] if k.startswith("vqbet.policy.") and not k.endswith(".attn.bias")]
    vq = [k for k in at[3] if ".vqvae_model." in k]
    assert not all(torch.equal(at[6][k], at[12][k]) for k in gpt)  # steps 7-12 are replays: they train
    assert all(torch.equal(at[3][k], at[12][k]) for k in vq)  # ... and leave the VQ-VAE frozen
    losses = [r["loss"] for r in read_metrics(out)]
    assert all(torch.isfinite(torch.tensor(losses))) and len(set(losses[-4:])) == 4
