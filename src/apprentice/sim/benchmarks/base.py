"""What every wrapped benchmark env shares: the attributes sim consumers read, seeding, time limits.

`apprentice.sim.record`, `apprentice.sim.eval`, `nodes/sim_node` and the scripted experts read an env
through one small interface (the one `MujocoTask` has): `fps`, `task` (the instruction text), `robot_type`,
`joint_names`, `camera`, `image_key`, `environment_state_names`, `render_images`, `image_height`/`image_width`,
`frames_after_success`, `max_episode_steps`, `features`, and observations keyed by dataset feature name
(`observation.state`, `observation.images.<camera>`, ...) with `info["is_success"]` on every step.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from apprentice.sim.base import SimError


def import_benchmark(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import a benchmark package, or fail with the one command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SimError(
            f"{package or module} is not installed ({exc}); install it with: pip install 'apprentice[{extra}]'"
        ) from exc


class BenchmarkEnv(gym.Env):
    """A real benchmark env (`self.inner`) whose observations are converted to dataset feature keys.

    Subclasses build `self.inner` in `__init__` (then call `super().__init__`), set the class attributes,
    set `self.observation_space` (a Dict keyed by feature name), and implement `_convert(raw_obs)` and
    `_success(raw_obs, reward, info)`. Actions go to the inner env
    unchanged unless `_inner_action` says otherwise.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}
    fps: int = 30
    task: str = ""  # the language instruction stored with every recorded frame
    robot_type: str = ""
    joint_names: ClassVar[list[str]] = []  # names of observation.state / action, in order
    camera: str = "top"
    environment_state_names: ClassVar[list[str]] = []
    max_episode_steps: int = 300
    frames_after_success: int | None = 20

    def __init__(
        self,
        inner: gym.Env,
        *,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 96,
        image_width: int = 96,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
    ) -> None:
        self.inner = inner
        self.render_images = render
        self.image_height, self.image_width = image_height, image_width
        self.terminate_on_success = terminate_on_success
        if max_episode_steps is not None:
            self.max_episode_steps = max_episode_steps
        self._seed = seed
        self._seeded = False
        self._elapsed = 0
        self.render_mode = "rgb_array"
        self.action_space = inner.action_space

    # ----------------------------------------------------------------------------------------- API
    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """The dataset features dict (LeRobot info.json "features", without the default columns)."""
        from apprentice.sim.base import dataset_features

        return dataset_features(self)

    @property
    def image_key(self) -> str:
        """The camera's dataset feature; a single-camera env whose lerobot wrapper says `observation.image`
        (pusht) sets it as a class attribute."""
        return f"observation.images.{self.camera}"

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start a new episode; the first reset uses the constructor's seed unless one is given."""
        if seed is None and not self._seeded:
            seed = self._seed
        super().reset(seed=seed)
        self._seeded = True
        self._elapsed = 0
        raw, info = self.inner.reset(seed=seed, options=options)
        self._raw = raw
        return self._convert(raw), {**info, "is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != self.action_space.shape:
            raise SimError(f"{self.task!r}: action has shape {action.shape}, expected {self.action_space.shape}")
        if not np.all(np.isfinite(action)):
            raise SimError(f"{self.task!r}: action contains NaN/inf: {action}")
        raw, reward, terminated, truncated, info = self.inner.step(self._inner_action(action))
        self._raw = raw
        self._elapsed += 1
        success = self._success(raw, float(reward), info)
        terminated = bool(terminated or (success and self.terminate_on_success))
        truncated = bool(truncated or self._elapsed >= self.max_episode_steps)
        return self._convert(raw), float(reward), terminated, truncated, {**info, "is_success": bool(success)}

    def render(self) -> np.ndarray:
        return self.inner.render()

    def close(self) -> None:
        self.inner.close()

    # ------------------------------------------------------------------------------ subclass hooks
    def _convert(self, raw: Any) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _success(self, raw: Any, reward: float, info: dict) -> bool:
        return bool(info.get("is_success", False))

    def _inner_action(self, action: np.ndarray) -> np.ndarray:
        return action
