"""Actor ⇄ learner over loopback gRPC: learner updates/s, actor control-loop rate while learning, throughput.

    python benchmarks/rl_transport.py --quick                 # CPU, a minute
    python benchmarks/rl_transport.py --device cuda           # the learner's updates on the GPU

Phase 1 (throughput): one ActorClient sends transitions of gym-hil PandaPickCube's two layouts (state:
21 floats; pixels: + 2 x 128x128x3 uint8) to a LearnerService as fast as it can; transitions/s and MB/s
until the learner holds them all. Phase 2 (online loop): a learner *process* (spawned, as on another
machine) runs an MLP actor-critic update (`MLPAlgorithm`: 2x256 actor and twin critics with a TD target —
SAC-sized networks, not SAC) at `--utd_ratio` while this process drives PandaPickCube with the scripted
human intervening; reports updates/s, the actor's control-loop rate (policy + env + send) and weight
pushes received. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from typing import Any

import numpy as np
import torch


class MLPAlgorithm:
    """An actor + twin-critic MLP pair trained with a TD target (and behaviour cloning on the actor)."""

    def __init__(self, obs_dim: int, action_dim: int, device: str = "cpu", hidden: int = 256,
                 utd_ratio: int = 1) -> None:
        self.utd_ratio = utd_ratio
        def mlp(i: int, o: int) -> torch.nn.Module:
            return torch.nn.Sequential(torch.nn.Linear(i, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                       torch.nn.ReLU(), torch.nn.Linear(hidden, o))

        self.device = torch.device(device)
        self.actor = mlp(obs_dim, action_dim).to(self.device)
        self.critics = torch.nn.ModuleList([mlp(obs_dim + action_dim, 1) for _ in range(2)]).to(self.device)
        self.target = torch.nn.ModuleList([mlp(obs_dim + action_dim, 1) for _ in range(2)]).to(self.device)
        self.target.load_state_dict(self.critics.state_dict())
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=3e-4)

    def _obs(self, batch: dict[str, torch.Tensor], prefix: str = "") -> torch.Tensor:
        keys = [f"{prefix}observation.state", f"{prefix}observation.environment_state"]
        return torch.cat([batch[k].float().to(self.device) for k in keys if k in batch], dim=-1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """`utd_ratio` critic steps on the stacked batches' parts, the actor on the last (as SAC does)."""
        n = self.utd_ratio
        parts = [{k: v.chunk(n)[i] for k, v in batch.items()} for i in range(n)]
        for part in parts[:-1]:
            self._step(part, actor=False)
        return self._step(parts[-1], actor=True)

    def _step(self, batch: dict[str, torch.Tensor], actor: bool) -> dict[str, float]:
        obs, nxt = self._obs(batch), self._obs(batch, "next.")
        action = batch["action"].float().to(self.device)
        reward = batch["next.reward"].float().to(self.device)
        done = batch["next.done"].float().to(self.device)
        with torch.no_grad():
            next_in = torch.cat([nxt, self.actor(nxt)], -1)
            target = reward + 0.99 * (1 - done) * torch.min(*[q(next_in).squeeze(-1) for q in self.target])
        q_in = torch.cat([obs, action], -1)
        critic_loss = sum(((q(q_in).squeeze(-1) - target) ** 2).mean() for q in self.critics)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        with torch.no_grad():  # Polyak after every critic step
            for p, t in zip(self.critics.parameters(), self.target.parameters()):
                t.lerp_(p, 0.005)
        if not actor:
            return {"critic_loss": float(critic_loss.detach())}
        actor_loss = -self.critics[0](torch.cat([obs, self.actor(obs)], -1)).mean() + \
            ((self.actor(obs) - action) ** 2).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        return {"critic_loss": float(critic_loss.detach()), "actor_loss": float(actor_loss.detach())}

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.actor.state_dict().items()}

    def load_actor_state_dict(self, sd) -> None:
        self.actor.load_state_dict(sd)

    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        x = torch.cat([torch.as_tensor(obs[k]).float() for k in ("observation.state", "observation.environment_state")
                       if k in obs]).to(self.device)
        with torch.no_grad():
            return self.actor(x).cpu().numpy()

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critics": self.critics.state_dict(),
                "target": self.target.state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict()}

    def load_state_dict(self, sd) -> None:
        self.actor.load_state_dict(sd["actor"])
        self.critics.load_state_dict(sd["critics"])
        self.target.load_state_dict(sd["target"])
        self.actor_opt.load_state_dict(sd["actor_opt"])
        self.critic_opt.load_state_dict(sd["critic_opt"])


def env_features(obs_type: str) -> dict[str, dict[str, Any]]:
    """PandaPickCube's layouts (apprentice.sim.benchmarks.hil), written out: phase 1 needs no simulator."""
    table = {"observation.state": {"dtype": "float32", "shape": [18]},
             "action": {"dtype": "float32", "shape": [4]}}
    if obs_type == "pixels_agent_pos":
        for cam in ("front", "wrist"):
            table[f"observation.images.{cam}"] = {"dtype": "uint8", "shape": [128, 128, 3]}
    else:
        table["observation.environment_state"] = {"dtype": "float32", "shape": [3]}
    return table


class PointMass:
    """Stand-in for PandaPickCube where gym-hil is not installed (same layout; a point chasing a goal)."""

    name = "point_mass"

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.pos, self.goal, self.t = self.rng.uniform(-1, 1, 3), self.rng.uniform(-1, 1, 3), 0
        return self._obs(), {}

    def _obs(self):
        state = np.zeros(18, np.float32)
        state[15:] = self.pos
        return {"observation.state": state, "observation.environment_state": self.goal.astype(np.float32)}

    def step(self, action):
        self.pos = self.pos + 0.05 * np.clip(np.asarray(action[:3]), -1, 1)
        self.t += 1
        success = bool(np.linalg.norm(self.pos - self.goal) < 0.05)
        return self._obs(), float(success), success, self.t >= 100, {"is_success": success}

    def close(self) -> None:
        pass


class PointMassExpert:
    def __init__(self, env: PointMass) -> None:
        self.env = env

    def reset(self, obs=None) -> None:
        pass

    def act(self, obs=None):
        return np.array([*np.clip((self.env.goal - self.env.pos) / 0.05, -1, 1), 1.0], np.float32)


def make_env_and_expert(obs_type: str) -> tuple[Any, Any]:
    try:
        from apprentice.sim import make_env, make_expert

        env = make_env("gym_hil_pick_cube", obs_type=obs_type)
        return env, make_expert(env)
    except Exception as exc:  # gym-hil / mujoco missing (the GPU box): the transport is measured all the same
        print(f"gym-hil unavailable ({type(exc).__name__}: {exc}); actor drives a point-mass stand-in", file=sys.stderr)
        env = PointMass()
        return env, PointMassExpert(env)


def throughput(obs_type: str, n: int) -> dict[str, float]:
    from apprentice.rl.transport.actor_client import ActorClient, ActorClientConfig
    from apprentice.rl.transport.codec import Transition
    from apprentice.rl.transport.learner_service import LearnerService

    features = env_features(obs_type)
    rng = np.random.default_rng(0)
    obs = {k: (rng.integers(0, 255, f["shape"], dtype=np.uint8) if f["dtype"] == "uint8"
               else rng.normal(size=f["shape"]).astype(np.float32)) for k, f in features.items() if k != "action"}
    service = LearnerService(features, port=0)
    port = service.start()
    client = ActorClient(features, ActorClientConfig(learner_port=port))
    client.connect()
    started = time.perf_counter()
    for i in range(n):
        done = i % 100 == 99
        client.put(Transition(obs, np.zeros(4, np.float32), 0.0, False, done, False, False, obs if done else None))
    assert client.flush(120)
    seconds = time.perf_counter() - started
    client.close(1.0)
    service.stop(0)
    return {"transitions_per_s": round(n / seconds, 1), "mb_per_s": round(service.stats.bytes_in / seconds / 1e6, 2),
            "bytes_per_transition": service.stats.bytes_in // n}


def learner_process(port_queue: mp.Queue, result_queue: mp.Queue, stop: Any, features: dict, device: str,
                    utd_ratio: int, output_dir: str) -> None:
    torch.set_num_threads(1 if device == "cpu" else 4)
    import threading

    from apprentice.rl.learner import Learner, LearnerConfig

    obs_dim = sum(f["shape"][0] for k, f in features.items() if k != "action" and len(f["shape"]) == 1)
    learner = Learner(MLPAlgorithm(obs_dim, 4, device, utd_ratio=utd_ratio),
                      LearnerConfig(output_dir=output_dir, port=0, batch_size=256, utd_ratio=utd_ratio,
                                    online_step_before_learning=200, policy_parameters_push_frequency=100,
                                    save_freq=0, features=features))
    port_queue.put(learner.start())
    halt = threading.Event()
    thread = threading.Thread(target=learner.run, args=(halt,), daemon=True)
    thread.start()
    first: tuple[float, int] | None = None
    while not stop.is_set():
        if first is None and learner.step > 0:
            first = (time.perf_counter(), learner.step)
        time.sleep(0.05)
    halt.set()
    thread.join(10)
    t0, s0 = first or (time.perf_counter(), learner.step)
    seconds = time.perf_counter() - t0
    result_queue.put({"updates": learner.step, "updates_per_s": round((learner.step - s0) / max(seconds, 1e-9), 1),
                      "transitions": learner.transitions, "replay_frames": len(learner.replay)})
    learner.stop(checkpoint=False)


def online(obs_type: str, steps: int, device: str, utd_ratio: int, output_dir: str) -> dict[str, Any]:
    from apprentice.rl.actor import ActorConfig, ScriptedIntervention, run_actor
    from apprentice.rl.transport.actor_client import ActorClient, ActorClientConfig

    features = env_features(obs_type)
    ctx = mp.get_context("spawn")
    port_queue, result_queue, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=learner_process, args=(port_queue, result_queue, stop, features, device, utd_ratio,
                                                     output_dir))
    proc.start()
    port = port_queue.get(timeout=300)
    env, expert = make_env_and_expert(obs_type)
    obs_dim = sum(f["shape"][0] for k, f in features.items() if k != "action" and len(f["shape"]) == 1)
    algorithm = MLPAlgorithm(obs_dim, 4)
    client = ActorClient(features, ActorClientConfig(learner_port=port))
    client.connect()
    started = time.perf_counter()
    stats = run_actor(env, algorithm, client, ActorConfig(online_steps=steps),
                      ScriptedIntervention(expert, drift=0.5))
    wall = time.perf_counter() - started
    client.close(10.0)
    stop.set()
    result = result_queue.get(timeout=120)
    proc.join(30)
    env.close()
    loop = np.asarray(stats.loop_s)
    return {**result, "env": env.name, "actor_steps": stats.steps, "episodes": stats.episodes,
            "intervention_rate": round(stats.interventions / max(1, stats.steps), 3),
            "actor_control_hz": round(stats.control_hz, 1),
            "actor_loop_p95_ms": round(float(np.percentile(loop, 95)) * 1e3, 2),
            "actor_steps_per_s": round(stats.steps / wall, 1), "parameter_updates_at_actor": stats.parameter_updates,
            "resent": client.stats.resent, "reconnects": client.stats.reconnects}


def env_only(obs_type: str, steps: int) -> float:
    """Steps/s of the env + scripted expert alone: the ceiling of the actor's control-loop rate here."""
    env, expert = make_env_and_expert(obs_type)
    obs, _ = env.reset(seed=0)
    started = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(expert.act(obs))
        if terminated or truncated:
            obs, _ = env.reset(seed=None)
            expert.reset()
    env.close()
    return round(steps / (time.perf_counter() - started), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CPU smoke run)")
    parser.add_argument("--device", default="cpu", help="the learner's torch device")
    parser.add_argument("--utd_ratio", type=int, default=2)
    parser.add_argument("--output_dir", default="/tmp/rl_transport_bench")
    args = parser.parse_args()
    import shutil

    shutil.rmtree(args.output_dir, ignore_errors=True)
    torch.set_num_threads(1)
    n_state, n_pixels, steps = (2000, 300, 600) if args.quick else (20000, 3000, 5000)
    result = {
        "benchmark": "rl_transport", "device": args.device, "utd_ratio": args.utd_ratio, "quick": args.quick,
        "throughput_state": throughput("environment_state_agent_pos", n_state),
        "throughput_pixels": throughput("pixels_agent_pos", n_pixels),
        "env_only_steps_per_s": env_only("environment_state_agent_pos", steps // 3),
        "online_state": online("environment_state_agent_pos", steps, args.device, args.utd_ratio,
                               f"{args.output_dir}/state"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
