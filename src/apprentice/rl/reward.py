"""Where HIL-SERL's reward comes from: the env's own, a trained reward classifier on the cameras (with
optional termination on success), or an operator's success signal (keyboard/gamepad key)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class RewardSource(Protocol):
    def __call__(self, obs: dict[str, np.ndarray], env_reward: float, info: dict) -> tuple[float, bool]:
        """(reward, terminate) for the transition that led to `obs`."""


class EnvReward:
    """The simulator's reward; terminates on its success flag only through the env itself."""

    def __call__(self, obs: dict[str, np.ndarray], env_reward: float, info: dict) -> tuple[float, bool]:
        return float(env_reward), False


class ClassifierReward:
    """A `reward_classifier` on the observation's cameras: reward `success_reward` when it says success."""

    def __init__(self, classifier: Any, threshold: float = 0.5, terminate_on_success: bool = True,
                 success_reward: float = 1.0) -> None:
        self.classifier = classifier.eval()
        self.threshold, self.terminate_on_success, self.success_reward = threshold, terminate_on_success, success_reward

    def __call__(self, obs: dict[str, np.ndarray], env_reward: float, info: dict) -> tuple[float, bool]:
        batch = {}
        for key in self.classifier.image_keys:
            img = np.asarray(obs[key])
            chw = img.transpose(2, 0, 1) if img.shape[-1] in (1, 3) else img
            batch[key] = torch.from_numpy(np.ascontiguousarray(chw))[None]
        success = bool(self.classifier.predict_reward(batch, self.threshold)[0] > 0.5)
        return (self.success_reward if success else 0.0), success and self.terminate_on_success


class SuccessSignalReward:
    """An operator's key press (keyboard `s`, a gamepad button) marks success: reward 1 and the episode ends.
    The teleop layer calls `signal()` from its event callback; the loop reads it once per step."""

    def __init__(self) -> None:
        self._pending = False

    def signal(self) -> None:
        self._pending = True

    def __call__(self, obs: dict[str, np.ndarray], env_reward: float, info: dict) -> tuple[float, bool]:
        pending, self._pending = self._pending, False
        return (1.0, True) if pending else (0.0, False)
