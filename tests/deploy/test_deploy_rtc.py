"""Real-time chunking in the scheduler and runtime: each async inference gets the committed prefix and delay."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_helpers import MS, FakeClock

from apprentice.contract import load_contract
from apprentice.deploy import ActionScheduler, DeployError
from apprentice.deploy.chunking import ChunkPrefix
from apprentice.deploy.runtime import PolicyRuntime, RuntimeConfig
from apprentice.policies import load_policy
from apprentice.policies.rtc import RTCGuidance
from apprentice.resources import config_path


class GatedEcho:
    """Chunk k launched at tick L plans action L + i + 100 k for tick L + i; each call waits for its gate."""

    def __init__(self, chunk_size: int = 10) -> None:
        self.chunk_size = chunk_size
        self.gate = threading.Event()
        self.calls: list[tuple[int, ChunkPrefix | None]] = []
        self.finished = 0

    def __call__(self, obs: dict, prefix: ChunkPrefix | None = None) -> np.ndarray:
        k = len(self.calls)
        self.calls.append((obs["tick"], prefix))
        assert self.gate.wait(5.0), "test gate never opened"
        self.gate.clear()
        self.finished += 1
        steps = np.arange(self.chunk_size, dtype=np.float64) + obs["tick"] + 100 * k
        return np.stack([steps, -steps], axis=-1)

    def wait_called(self, n: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.calls) < n and time.monotonic() < deadline:  # the call starts on the worker thread
            time.sleep(0.001)

    def release(self) -> None:
        done = self.finished
        self.gate.set()
        deadline = time.monotonic() + 5
        while self.finished == done and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.01)  # the future completes just after the call returns


def test_async_rtc_passes_the_unexecuted_tail_and_the_measured_delay() -> None:
    model = GatedEcho(chunk_size=10)
    sched = ActionScheduler(model, n_action_steps=8, asynchronous=True, lookahead=4, rtc=True)
    assert sched.step(0, {"tick": 0}) is None and sched.step(1, {"tick": 1}) is None  # first chunk in flight
    model.release()
    assert sched.step(2, {"tick": 2})[0] == 2  # arrived at tick 2: ticks 0-1 passed (delay 2)
    assert sched.stats.delay_ticks == [2] and sched.inference_delay == 2
    assert [sched.step(t, {"tick": t})[0] for t in (3, 4)] == [3, 4]
    assert sched.step(5, {"tick": 5})[0] == 5  # 3 left < lookahead 4: the second inference starts
    model.wait_called(2)
    tick, prefix = model.calls[1]
    # The first chunk from the launch tick on (beyond n_action_steps too): what the new one must continue.
    assert tick == 5 and prefix.actions[:, 0].tolist() == [5, 6, 7, 8, 9] and prefix.inference_delay == 2
    assert sched.step(6, {"tick": 6})[0] == 6
    model.release()
    # The new chunk replaces the queue from the tick it arrived at (lerobot's RTC action queue).
    assert sched.step(7, {"tick": 7})[0] == 107 and sched.step(8, {"tick": 8})[0] == 108
    assert model.calls[0][1] is None  # no previous chunk: plain inference
    sched.reset()
    assert sched.prefix(9) is None  # a new episode has nothing committed
    sched.close()


def test_fixed_delay_and_sync_refused() -> None:
    sched = ActionScheduler(GatedEcho(), 8, asynchronous=True, rtc=True, inference_delay=3)
    assert sched.inference_delay == 3
    sched.close()
    with pytest.raises(DeployError, match="mode=async"):
        ActionScheduler(GatedEcho(), 8, rtc=True)


class RecordingFlowPolicy(torch.nn.Module):
    """A flow-matching policy's interface: predict_action_chunk(obs, noise=None, rtc=None); records rtc."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[RTCGuidance | None] = []
        self.tasks: list[str] = []
        self.normalizer = self.Scale()

    class Scale:
        """Policy.normalizer's interface: the runtime hands RTC the prefix in the normalized space."""

        def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
            assert key == "action"
            return x * 100

    def predict_action_chunk(self, obs: dict, noise=None, rtc: RTCGuidance | None = None) -> torch.Tensor:
        self.seen.append(rtc)
        self.tasks.append(obs["task"][0])
        return torch.full((1, 10, 6), 0.01 * len(self.seen))


def push_all(rt: PolicyRuntime, stamp_ns: int) -> None:
    rt.push("observation.state", stamp_ns, np.zeros(6, np.float32))
    rt.push("observation.environment_state", stamp_ns, np.array([0.2, 0.0, 0.1], np.float32))
    rt.push("observation.images.top", stamp_ns, np.full((96, 128, 3), 128, np.uint8))


def test_runtime_gives_rtc_guidance_to_a_flow_policy_and_set_task_reaches_the_next_inference() -> None:
    contract = load_contract(config_path("contracts", "sim_reach.yaml"))
    policy = RecordingFlowPolicy()
    config = RuntimeConfig(mode="async", lookahead=3, n_action_steps=5, rtc_enabled=True, rtc_execution_horizon=4)
    rt = PolicyRuntime(policy, contract, config, clock=FakeClock())
    rt.enable(True)
    for i in range(30):
        push_all(rt, (990 + 33 * i) * MS)
        rt.step((1000 + 33 * i) * MS)
        if i == 12:
            assert rt.set_task("reach the blue target") and not rt.set_task("reach the blue target")
        time.sleep(1 / 30)
    rt.close()
    guided = [g for g in policy.seen if g is not None]
    assert policy.seen[0] is None and guided, "inferences after the first must be guided"
    g = guided[-1]
    assert g.config.enabled and g.config.execution_horizon == 4
    assert g.prev_chunk_left_over.shape[0] == 1 and g.prev_chunk_left_over.shape[-1] == 6
    assert g.prev_chunk_left_over.shape[1] <= 10 and g.inference_delay >= 0
    # chunk k is filled with 0.01 k: normalized (x 100) the prefix holds the whole number k of its chunk
    values = g.prev_chunk_left_over.unique()
    assert len(values) == 1 and float(values[0]) == pytest.approx(round(float(values[0]))) and values[0] >= 1
    assert policy.tasks[0] == contract.task and policy.tasks[-1] == "reach the blue target"
    assert rt.diagnostics()["task"] == "reach the blue target"
    assert rt.set_task("") and rt.task == contract.task  # '' = back to the configured default


def test_rtc_with_a_policy_that_cannot_use_it_is_refused_by_name(tiny_act: Path) -> None:
    contract = load_contract(config_path("contracts", "sim_reach.yaml"))
    with pytest.raises(DeployError, match=r"rtc_enabled.*act.*flow-matching"):
        PolicyRuntime(load_policy(tiny_act), contract, RuntimeConfig(mode="async", rtc_enabled=True))
    with pytest.raises(DeployError, match="mode=async"):
        RuntimeConfig(mode="sync", rtc_enabled=True)


def test_infer_flags_and_node_parameters_reach_the_runtime_config() -> None:
    from apprentice.deploy.params import PolicyNodeParams
    from apprentice.nodes.infer_cli import ros_args

    args = ros_args(["--server=127.0.0.1:1", "--mode=async", "--rtc", "--rtc.execution_horizon=5", "--task-topic=say"])
    assert {"rtc_enabled:=true", "rtc_execution_horizon:=5", 'task_topic:="say"'} <= set(args)
    cfg = PolicyNodeParams(mode="async", rtc_enabled=True, rtc_execution_horizon=5).runtime_config()
    assert cfg.rtc_enabled and cfg.rtc_execution_horizon == 5 and cfg.rtc_inference_delay is None
    assert PolicyNodeParams(mode="async", rtc_inference_delay=2).runtime_config().rtc_inference_delay == 2
