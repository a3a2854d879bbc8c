"""Is `reach` easy to learn? Behaviour-clone a tiny MLP (state + target → action chunk) from expert demos,
then evaluate it closed-loop. Prints one JSON object.

    python benchmarks/sim_reach_learnability.py --episodes 50 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from apprentice.dataset import LeRobotDataset
from apprentice.sim.eval import evaluate
from apprentice.sim.record import record


class ChunkMLP:
    """Predicts the next `chunk` actions from (state, target); executes them open-loop, like ACT's queue."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor, chunk: int, action_dim: int) -> None:
        self.net, self.mean, self.std, self.chunk, self.action_dim = net, mean, std, chunk, action_dim
        self.queue: list[np.ndarray] = []

    def reset(self) -> None:
        self.queue = []

    def select_action(self, obs: dict) -> np.ndarray:
        if not self.queue:
            x = torch.cat([obs["observation.state"], obs["observation.environment_state"]], dim=1)
            with torch.no_grad():
                y = self.net((x - self.mean) / self.std).reshape(x.shape[0], self.chunk, self.action_dim)
            self.queue = list(y.numpy().transpose(1, 0, 2))
        return self.queue.pop(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--root", default=None, help="reuse a recorded reach dataset instead of recording one")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = Path(args.root) if args.root else Path(tmp) / "reach"
        if not args.root:
            record("reach", root, args.episodes, log=lambda _: None)
        record_s = time.perf_counter() - t0
        ds = LeRobotDataset(root)
        state, target, action = (
            ds.column("observation.state"),
            ds.column("observation.environment_state"),
            ds.column("action"),
        )
        episode = ds.column("episode_index").reshape(-1)
    # chunk targets: the next `chunk` actions of the same episode (the last one repeated at the episode end)
    n = len(action)
    idx = np.arange(n)[:, None] + np.arange(args.chunk)[None, :]
    idx = np.minimum(idx, n - 1)
    same = episode[idx] == episode[:, None]
    last = np.array([np.max(np.flatnonzero(episode == e)) for e in episode])
    idx = np.where(same, idx, last[:, None])
    x = torch.tensor(np.concatenate([state, target], axis=1), dtype=torch.float32)
    y = torch.tensor(action[idx].reshape(n, -1), dtype=torch.float32)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-2)  # wrist_roll and gripper never move: no 0-division
    net = nn.Sequential(
        nn.Linear(x.shape[1], 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, y.shape[1])
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t1 = time.perf_counter()
    for _ in range(args.steps):
        batch = torch.randint(0, n, (256,))
        loss = nn.functional.mse_loss(net((x[batch] - mean) / std), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t1
    policy = ChunkMLP(net.eval(), mean, std, args.chunk, action.shape[1])
    info = evaluate(policy, "reach", n_episodes=args.eval_episodes, batch_size=10, env_kwargs={"render": False})
    print(
        json.dumps(
            {
                "task": "reach",
                "demo_episodes": args.episodes,
                "demo_frames": n,
                "record_s": round(record_s, 1),
                "train_steps": args.steps,
                "train_s": round(train_s, 1),
                "final_loss": float(loss.detach()),
                "eval_episodes": args.eval_episodes,
                "success_rate": info["overall"]["success_rate"],
                "avg_max_reward": info["overall"]["avg_max_reward"],
            }
        )
    )


if __name__ == "__main__":
    main()
