"""A small real online algorithm and a toy env for the transport tests (the transport is under test).

`LinearAlgorithm`: a linear policy a = W s fitted to the stored actions by Adam steps on the squared
error — a real update with optimizer state, so checkpoints and weight pushes carry something that
changes. `LineEnv`: a 3-d state that drifts by the action, with a tiny camera image.
"""

from __future__ import annotations

import numpy as np
import torch

STATE_DIM, ACTION_DIM = 3, 2


class LinearAlgorithm:
    def __init__(self, seed: int = 0, state_dim: int = STATE_DIM, action_dim: int = ACTION_DIM) -> None:
        torch.manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.zeros(action_dim, state_dim))
        self.optimizer = torch.optim.Adam([self.weight], lr=0.05)
        self.batch_sizes: list[int] = []

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        state, action = batch["observation.state"].float(), batch["action"].float()
        self.batch_sizes.append(len(state))
        loss = ((state @ self.weight.T - action) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight.detach().clone()}

    def load_actor_state_dict(self, sd) -> None:
        with torch.no_grad():
            self.weight.copy_(sd["weight"])

    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return (self.weight @ torch.as_tensor(obs["observation.state"]).float()).numpy()

    def state_dict(self) -> dict:
        return {"weight": self.weight.detach().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, sd) -> None:
        with torch.no_grad():
            self.weight.copy_(sd["weight"])
        self.optimizer.load_state_dict(sd["optimizer"])


def make_linear(config, features) -> LinearAlgorithm:
    """The registry factory (apprentice.rl.run_config.register_algorithm) of LinearAlgorithm."""
    return LinearAlgorithm(int(config.get("seed", 0)), features["observation.state"]["shape"][0],
                           features["action"]["shape"][0])


class LineEnv:
    """Episodes of `length` steps; the target action is a fixed linear map of the state."""

    TARGET = np.array([[1.0, -0.5, 0.0], [0.0, 0.5, 1.0]], dtype=np.float32)

    def __init__(self, length: int = 10, image: bool = True) -> None:
        self.length, self.image = length, image
        self.rng = np.random.default_rng(0)

    def _obs(self) -> dict[str, np.ndarray]:
        obs = {"observation.state": self.state.copy()}
        if self.image:
            obs["observation.images.cam"] = np.full((8, 8, 3), self.t % 256, dtype=np.uint8)
        return obs

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict]:
        self.rng = np.random.default_rng(seed)
        self.state = self.rng.normal(size=STATE_DIM).astype(np.float32)
        self.t = 0
        return self._obs(), {}

    def expert(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.TARGET @ obs["observation.state"]

    def step(self, action: np.ndarray):
        reward = -float(np.linalg.norm(np.asarray(action) - self.expert(self._obs())))
        self.state = (self.state + 0.1 * self.rng.normal(size=STATE_DIM)).astype(np.float32)
        self.t += 1
        return self._obs(), reward, False, self.t >= self.length, {"is_success": reward > -0.1}


def features(image: bool = True, state_dim: int = STATE_DIM) -> dict[str, dict]:
    table = {"observation.state": {"dtype": "float32", "shape": [state_dim]},
             "action": {"dtype": "float32", "shape": [ACTION_DIM]}}
    if image:
        table["observation.images.cam"] = {"dtype": "uint8", "shape": [8, 8, 3]}
    return table
