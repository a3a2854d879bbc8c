"""Real-time chunking in sim: the largest action jump at chunk boundaries with vs without RTC, under
asynchronous inference with a simulated inference delay, and the control loop's tick period (jitter).

The `--env.type` env (`reach`, or `reach_color` with `--env.obs_type`) is driven in real time at its 30 fps
through `PolicyRuntime` (the policy node's own logic; reach: the sim_reach contract, reach_color: the same with
its state and both targets) in mode=async; every inference sleeps `--delay-s` on top of its compute, so
~delay * fps actions are committed while the next chunk is denoised. Each episode's instruction (the env's
`task`, drawn per episode by reach_color) reaches the policy as the node's task topic does: `set_task` before
the episode; with reach_color the JSON also counts the inferences that saw their episode's instruction and the
follow rate per instruction. The policy is a flow-matching one: `--policy.path` (a checkpoint whose
predict_action_chunk takes `rtc`, e.g. the SmolVLA `benchmarks/language_following.py` trains; its
n_action_steps unless `--n-action-steps`), or by default a small flow-matching MLP (state + target -> action
chunk, conditioned velocity field) trained here on scripted demos. Prints one JSON object.

    python benchmarks/rtc_chunk_jumps.py --quick
    python benchmarks/rtc_chunk_jumps.py --episodes 20 --delay-s 0.15 --device cuda
    python benchmarks/rtc_chunk_jumps.py --env.type=reach_color --env.obs_type=targets_in_state --device cuda \\
        --policy.path=run/train_smolvla/checkpoints/last/pretrained_model      # a trained SmolVLA
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from apprentice.contract import Contract, contract_from_dict, load_contract
from apprentice.deploy.runtime import OBS_STAMP, PolicyRuntime, RuntimeConfig
from apprentice.policies.rtc import RTCGuidance, guided_denoise
from apprentice.resources import config_path
from apprentice.sim import make_env, make_expert
from apprentice.sim.reach_color import OBS_TYPES
from apprentice.sim.record import run_expert_episode
from vla_build import write_partial


class ActionNormalizer:
    """The `Policy.normalizer.normalize(key, x)` a policy offers (here for the action only)."""

    def __init__(self, model: FlowMLP) -> None:
        self.model = model

    def normalize(self, key: str, x: Tensor) -> Tensor:
        return (x - self.model.action_mean) / self.model.action_std


class FlowMLP(nn.Module):
    """A flow-matching chunk policy in the contract every flow-matching policy here follows:
    predict_action_chunk(obs, noise=None, rtc=None), time 1 = noise -> 0 = actions, v = noise - actions."""

    def __init__(self, cond_dim: int, chunk: int, action_dim: int, n_action_steps: int, num_steps: int = 10) -> None:
        super().__init__()
        self.chunk, self.action_dim, self.num_steps = chunk, action_dim, num_steps
        self.net = nn.Sequential(
            nn.Linear(chunk * action_dim + 1 + cond_dim, 512), nn.SiLU(), nn.Linear(512, 512), nn.SiLU(),
            nn.Linear(512, chunk * action_dim),
        )
        for name in ("cond_mean", "cond_std", "action_mean", "action_std"):
            self.register_buffer(name, torch.zeros(cond_dim if name.startswith("cond") else action_dim))
        self.config = SimpleNamespace(type="flow_mlp", n_action_steps=n_action_steps, chunk_size=chunk)
        self.normalizer = ActionNormalizer(self)  # the runtime maps RTC's prefix into the denoised space

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def velocity(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        out = self.net(torch.cat([x_t.flatten(1), t[:, None], cond], dim=1))
        return out.view(-1, self.chunk, self.action_dim)

    def _cond(self, obs: dict[str, Any]) -> Tensor:
        cond = torch.cat([obs["observation.state"], obs["observation.environment_state"]], dim=1).float()
        return (cond - self.cond_mean) / self.cond_std

    def loss(self, cond: Tensor, actions: Tensor) -> Tensor:
        actions = (actions - self.action_mean) / self.action_std
        noise = torch.randn_like(actions)
        t = torch.rand(actions.shape[0], device=actions.device)
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
        return ((self.velocity(x_t, t, cond) - (noise - actions)) ** 2).mean()

    def predict_action_chunk(self, obs: dict[str, Any], noise: Tensor | None = None, rtc: RTCGuidance | None = None):
        cond = self._cond(obs)
        if noise is None:
            noise = torch.randn(cond.shape[0], self.chunk, self.action_dim, device=cond.device)
        x = guided_denoise(lambda x_t, t: self.velocity(x_t, t, cond), noise, self.num_steps, rtc)
        return x * self.action_std + self.action_mean

    def reset(self) -> None:
        pass


def train_flow_mlp(episodes: int, steps: int, chunk: int, n_action_steps: int, device: str, env_type: str = "reach",
                   env_kwargs: dict[str, Any] | None = None) -> FlowMLP:
    """Scripted demos (no rendering) -> (state, environment state) -> next `chunk` actions, flow matching."""
    env = make_env(env_type, render=False, terminate_on_success=False, **(env_kwargs or {}))
    expert = make_expert(env)
    conds, targets = [], []
    for seed in range(episodes):
        frames: list[dict] = []
        run_expert_episode(env, expert, seed, 20, frames.append)
        acts = np.stack([f["action"] for f in frames])
        for i, f in enumerate(frames):
            idx = np.minimum(np.arange(i, i + chunk), len(frames) - 1)  # the last action held past the end
            conds.append(np.concatenate([f["observation.state"], f["observation.environment_state"]]))
            targets.append(acts[idx])
    cond = torch.tensor(np.stack(conds), dtype=torch.float32, device=device)
    actions = torch.tensor(np.stack(targets), dtype=torch.float32, device=device)
    model = FlowMLP(cond.shape[1], chunk, actions.shape[-1], n_action_steps).to(device)
    model.cond_mean.copy_(cond.mean(0))
    model.cond_std.copy_(cond.std(0).clamp_min(1e-2))
    model.action_mean.copy_(actions.flatten(0, 1).mean(0))
    model.action_std.copy_(actions.flatten(0, 1).std(0).clamp_min(1e-2))
    cond = (cond - model.cond_mean) / model.cond_std
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        batch = torch.randint(0, len(cond), (256,), device=device)
        loss = model.loss(cond[batch], actions[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"obs_type": args.obs_type} if args.env_type == "reach_color" else {}


def sim_contract(env_type: str, env: Any) -> Contract:
    """What the runtime reads the env through. reach: config/contracts/sim_reach.yaml. reach_color has no
    contract file (the sim node publishes one point target and no instruction): sim_reach's, with the env's
    observation.state names (6 joints, + both targets with targets_in_state), both targets as the environment
    state, and its first instruction as the default task. The topics are nominal: observations are pushed by key."""
    path = config_path("contracts", "sim_reach.yaml")
    if env_type == "reach":
        return load_contract(path)
    data = yaml.safe_load(path.read_text())
    for spec in data["observations"]:
        if spec["key"] == "observation.state":
            spec["names"] = list(env.state_names)
        elif spec["key"] == "observation.environment_state":
            spec.pop("paths", None)
            spec.update(topic="sim/environment_state", type="std_msgs/msg/Float64MultiArray",
                        names=list(env.environment_state_names))
    data["task"] = env.task
    return contract_from_dict(data, source=f"{path.name} with {env_type}'s observations")


def state_size(policy: Any) -> int | None:
    """observation.state's size in the policy's input features (None when it does not say)."""
    feature = (getattr(policy.config, "input_features", None) or {}).get("observation.state")
    return int(feature.shape[-1]) if feature is not None else None


def run(policy: Any, rtc: bool, args: argparse.Namespace) -> dict[str, Any]:
    """`args.episodes` real-time episodes through PolicyRuntime; action jumps split at chunk boundaries."""
    env = make_env(args.env_type, render=True, terminate_on_success=False, max_episode_steps=args.max_episode_steps,
                   **env_kwargs(args))
    contract = sim_contract(args.env_type, env)
    if (size := state_size(policy)) is not None and size != len(env.state_names):
        env.close()
        raise SystemExit(f"the policy reads an observation.state of {size} values; {args.env_type} with "
                         f"--env.obs_type={args.obs_type} gives {len(env.state_names)}: pass the obs_type it was "
                         "trained with")
    real = policy.predict_action_chunk
    seen: list[tuple[int, str]] = []  # (observation stamp, instruction) of every inference on a live tick

    def delayed(obs: dict, noise: Tensor | None = None, rtc: RTCGuidance | None = None) -> Tensor:
        if obs.get(OBS_STAMP) is not None:  # the warm-up's blank observation has none
            seen.append((obs[OBS_STAMP], obs["task"][0]))
        time.sleep(args.delay_s)  # the simulated inference delay (a big model on a small computer)
        return real(obs, noise=noise, rtc=rtc)

    policy.predict_action_chunk = delayed
    config = RuntimeConfig(
        mode="async",
        n_action_steps=args.n_action_steps,
        rtc_enabled=rtc,
        rtc_execution_horizon=args.execution_horizon,
        input_timeout_s=5.0,
        action_timeout_s=5.0,
    )
    runtime = PolicyRuntime(policy, contract, config)
    runtime.warmup()  # as the node does: the first call's one-time costs are not an inference delay
    period_ns = int(1e9 / env.fps)
    boundary, within, periods, successes, delays, starved = [], [], [], 0, [], 0
    windows: list[tuple[int, int, str]] = []  # each measured episode's (first tick, last tick, instruction)
    by_instruction: dict[str, list[int]] = {}  # instruction -> [successes, episodes]
    starved_running = 0  # ticks with no action once the episode's first one had come: the queue ran dry
    try:
        # Episode -1 warms up (not counted): the inference thread's first calls are several times slower.
        for episode in range(-1, args.episodes):
            measured = episode >= 0
            stats = runtime.scheduler.stats
            delays_before, starved_before = len(stats.delay_ticks), stats.starved_ticks
            obs, _ = env.reset(seed=100_000 + episode)
            # As the policy node gets it from its task topic: the episode's instruction, before its first inference.
            runtime.set_task(env.task)
            runtime.enable(True)
            previous, last_tick_ns, success = None, None, False
            next_tick = first_tick_ns = time.monotonic_ns()
            for _ in range(env.max_episode_steps):
                now = time.monotonic_ns()
                for key, value in obs.items():
                    runtime.push(key, now, value)
                before = runtime.scheduler.stats.inferences
                outcome = runtime.step(now)
                if last_tick_ns is not None and measured:
                    periods.append((now - last_tick_ns) * 1e-6)
                last_tick_ns = now
                if outcome.command is not None:
                    if previous is not None and measured:
                        jump = float(np.max(np.abs(outcome.command - previous)))
                        # a chunk merged during this step: this tick's action is the new chunk's first
                        (boundary if runtime.scheduler.stats.inferences > before else within).append(jump)
                    previous = outcome.command
                    obs, _, _, _, info = env.step(outcome.command)
                    success |= bool(info["is_success"])
                elif previous is not None and measured:
                    starved_running += 1
                next_tick += period_ns
                time.sleep(max(0.0, (next_tick - time.monotonic_ns()) * 1e-9))
            if measured:
                successes += success
                delays += stats.delay_ticks[delays_before:]
                starved += stats.starved_ticks - starved_before
                windows.append((first_tick_ns, last_tick_ns, env.task))
                tally = by_instruction.setdefault(env.task, [0, 0])
                tally[0] += success
                tally[1] += 1
            runtime.enable(False)
    finally:
        runtime.close()
        env.close()
        policy.predict_action_chunk = real

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 4) if values else None

    result = {
        "rtc": rtc,
        "boundaries": len(boundary),
        "max_boundary_jump_rad": pct(boundary, 100),
        "p95_boundary_jump_rad": pct(boundary, 95),
        "mean_boundary_jump_rad": round(float(np.mean(boundary)), 4) if boundary else None,
        "max_within_chunk_jump_rad": pct(within, 100),
        "mean_within_chunk_jump_rad": round(float(np.mean(within)), 4) if within else None,
        "success_rate": successes / args.episodes,
        "inference_delay_ticks_p50": pct(delays, 50),
        "inference_delay_ticks_max": pct(delays, 100),
        # SmolVLA's graphs so far (plain chunks add one, guided ones another); unchanged = this condition ran eagerly
        "chunk_graph_captures": getattr(getattr(policy, "chunk_graph", None), "captures", None),
        "tick_period_p50_ms": pct(periods, 50),
        "tick_period_p99_ms": pct(periods, 99),
        "starved_ticks": starved,
        "ticks": args.episodes * env.max_episode_steps,
    }
    if args.env_type != "reach":
        # Which instruction each inference saw, against the episode its observation was taken in.
        delivered = [task == instruction for stamp, task in seen
                     for start, end, instruction in windows if start <= stamp <= end]
        result.update(
            follow_rate_by_instruction={k: round(s / n, 3) for k, (s, n) in sorted(by_instruction.items())},
            inferences_measured=len(delivered),
            inferences_with_the_episode_instruction=sum(delivered),
            starved_ticks_after_first_action=starved_running,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy.path", dest="policy_path", help="a flow-matching checkpoint (default: train FlowMLP)")
    parser.add_argument("--env.type", dest="env_type", default="reach", choices=["reach", "reach_color"])
    parser.add_argument("--env.obs_type", dest="obs_type", choices=list(OBS_TYPES),
                        help="reach_color: default targets_in_state if the checkpoint's observation.state has "
                        "12 values, else environment_state")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--episodes", type=int, default=10, help="real-time episodes per condition (4 s each)")
    parser.add_argument("--max-episode-steps", type=int, default=None, help="ticks per episode (default: the env's)")
    parser.add_argument("--demo-episodes", type=int, default=40)
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--n-action-steps", type=int, default=None,
                        help="actions run per chunk (default: the checkpoint's n_action_steps, else 20); "
                        "> 2x the delay in ticks, or the queue starves")
    parser.add_argument("--execution-horizon", type=int, default=10)
    parser.add_argument("--delay-s", type=float, default=0.1, help="simulated inference delay added to each chunk")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the JSON here, after each condition")
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: 2 episodes, a short training")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.demo_episodes, args.train_steps, args.device = 2, 15, 800, "cpu"
    if args.obs_type and args.env_type != "reach_color":
        parser.error(f"--env.obs_type is reach_color's; --env.type={args.env_type} has one observation layout")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the control loop and the inference thread share this machine
    started = time.perf_counter()
    if args.policy_path:
        from apprentice.policies import load_policy

        policy, name = load_policy(args.policy_path, device=args.device), args.policy_path
        if args.env_type == "reach_color" and args.obs_type is None:
            args.obs_type = "targets_in_state" if state_size(policy) == 12 else "environment_state"
        args.n_action_steps = args.n_action_steps or int(getattr(policy.config, "n_action_steps", 0) or 20)
    else:
        if args.env_type == "reach_color":
            args.obs_type = args.obs_type or "environment_state"
        args.n_action_steps = args.n_action_steps or 20
        policy = train_flow_mlp(args.demo_episodes, args.train_steps, args.chunk, args.n_action_steps, args.device,
                                args.env_type, env_kwargs(args))
        name = "flow_mlp (trained here)"
    train_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "benchmark": "rtc_chunk_jumps",
        "task": args.env_type,
        **({"obs_type": args.obs_type} if args.env_type == "reach_color" else {}),
        "policy": name,
        "device": args.device,
        "fps": 30,
        "delay_s": args.delay_s,
        "n_action_steps": args.n_action_steps,
        "execution_horizon": args.execution_horizon,
        "episodes_per_condition": args.episodes,
        "train_s": round(train_s, 1),
    }
    result["without_rtc"] = without = run(policy, False, args)
    write_partial(args.json_out, result)  # a run cut short still leaves the first condition
    result["with_rtc"] = with_rtc = run(policy, True, args)
    result["max_boundary_jump_ratio"] = (
        round(with_rtc["max_boundary_jump_rad"] / without["max_boundary_jump_rad"], 3)
        if with_rtc["max_boundary_jump_rad"] and without["max_boundary_jump_rad"] else None
    )
    write_partial(args.json_out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
