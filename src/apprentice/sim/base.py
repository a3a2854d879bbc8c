"""What every MuJoCo task shares: seeded reset, fixed-rate position control, headless top-camera render."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

# MuJoCo picks its GL backend when first imported; without a display only EGL or OSMesa work, and EGL
# on Mesa's llvmpipe (Debian's libegl1 + libgl1-mesa-dri) is what scripts/setup.sh installs.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
import mujoco


class SimError(Exception):
    """A simulated task, expert, recording or evaluation cannot go on; the message says what to fix."""


def dataset_features(env: Any) -> dict[str, dict[str, Any]]:
    """An env's dataset features: state, environment state, camera (if rendering) and action."""
    names = list(env.joint_names)
    state = list(getattr(env, "state_names", names))
    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [len(state)], "names": state},
    }
    if env.environment_state_names:
        features["observation.environment_state"] = {
            "dtype": "float32",
            "shape": [len(env.environment_state_names)],
            "names": list(env.environment_state_names),
        }
    if env.render_images:
        features[env.image_key] = {
            "dtype": "video",
            "shape": [env.image_height, env.image_width, 3],
            "names": ["height", "width", "channels"],
        }
    features["action"] = {"dtype": "float32", "shape": [len(names)], "names": names}
    return features


class MujocoTask(gym.Env):
    """A gymnasium env over one MJCF model whose actuators are joint position servos.

    Subclasses set the class attributes and implement `_sample_episode`, `_evaluate` (reward, success)
    and optionally `_environment_state`. Actions are joint position targets in the joint order of
    `joint_names`; one `step` advances `1 / fps` seconds of physics.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}
    fps: int = 30
    task: str = ""
    robot_type: str = ""
    joint_names: ClassVar[list[str]] = []
    camera: str = "top"
    max_episode_steps: int = 100
    frames_after_success: int | None = 20  # what `sim record` keeps after the first success
    environment_state_names: ClassVar[list[str]] = []

    def __init__(
        self,
        xml: str,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 96,
        image_width: int = 128,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
    ) -> None:
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        n_substeps = round(1.0 / (self.fps * self.model.opt.timestep))
        if abs(n_substeps * self.model.opt.timestep * self.fps - 1.0) > 1e-6:
            raise SimError(
                f"{type(self).__name__}: timestep {self.model.opt.timestep} s does not divide 1/{self.fps} s"
            )
        self.n_substeps = n_substeps
        self._joint_set = {self.model.joint(i).name for i in range(self.model.njnt)}
        self.render_images = render
        self.image_height, self.image_width = image_height, image_width
        self.terminate_on_success = terminate_on_success
        if max_episode_steps is not None:
            self.max_episode_steps = max_episode_steps
        self._renderer: mujoco.Renderer | None = None
        self._seed = seed
        self._seeded = False
        self._elapsed = 0
        self.render_mode = "rgb_array"
        low = self.model.actuator_ctrlrange[:, 0].astype(np.float32)
        high = self.model.actuator_ctrlrange[:, 1].astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        spaces: dict[str, gym.Space] = {
            "observation.state": gym.spaces.Box(-np.inf, np.inf, (len(self.state_names),), np.float32)
        }
        if self.environment_state_names:
            n = len(self.environment_state_names)
            spaces["observation.environment_state"] = gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)
        if render:
            spaces[self.image_key] = gym.spaces.Box(
                0, 255, (image_height, image_width, 3), np.uint8
            )
        self.observation_space = gym.spaces.Dict(spaces)

    # ----------------------------------------------------------------------------------------- API
    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """The dataset features dict (LeRobot info.json "features", without the default columns)."""
        return dataset_features(self)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start a new episode; the first reset uses the constructor's seed unless one is given."""
        if seed is None and not self._seeded:
            seed = self._seed
        super().reset(seed=seed)
        self._seeded = True
        mujoco.mj_resetData(self.model, self.data)
        self._sample_episode(self.np_random)
        mujoco.mj_forward(self.model, self.data)
        self._elapsed = 0
        return self._observation(), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape[0] != self.model.nu:
            raise SimError(f"{self.task!r}: action has {action.shape[0]} values, expected {self.model.nu}")
        if not np.all(np.isfinite(action)):
            raise SimError(f"{self.task!r}: action contains NaN/inf: {action}")
        self.data.ctrl[:] = self._ctrl_from_action(np.clip(action, self.action_space.low, self.action_space.high))
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._elapsed += 1
        reward, success = self._evaluate()
        terminated = bool(success and self.terminate_on_success)
        truncated = self._elapsed >= self.max_episode_steps
        return self._observation(), float(reward), terminated, truncated, {"is_success": bool(success)}

    def render(self) -> np.ndarray:
        """The `camera` image, uint8 (H, W, 3)."""
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.image_height, self.image_width)
            except mujoco.FatalError as exc:
                raise SimError(
                    f"{self.task!r}: cannot render headless ({exc}); set MUJOCO_GL=egl (apt: libegl1 "
                    "libgl1-mesa-dri) or MUJOCO_GL=osmesa (apt: libosmesa6) before Python starts, or pass "
                    "render=False"
                ) from exc
        self._renderer.update_scene(self.data, self.camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    @property
    def image_key(self) -> str:
        """The camera's dataset feature (lerobot's single-camera envs, e.g. pusht, use `observation.image`)."""
        return f"observation.images.{self.camera}"

    @property
    def state_names(self) -> list[str]:
        """observation.state's names: the joints (a task may append more, e.g. reach_color's targets)."""
        return list(self.joint_names)

    @property
    def sim_time(self) -> float:
        return float(self.data.time)

    def joint_positions(self) -> np.ndarray:
        return np.array([self.data.joint(n).qpos[0] for n in self.joint_names], dtype=np.float32)

    def joint_velocities(self) -> np.ndarray:
        """Joint velocities in joint_names order (rad/s; 0 for joints with no single MuJoCo joint)."""
        ids = [self.model.joint(n).dofadr[0] if n in self._joint_set else -1 for n in self.joint_names]
        return np.array([self.data.qvel[i] if i >= 0 else 0.0 for i in ids], dtype=np.float32)

    # ------------------------------------------------------------------------------ subclass hooks
    def _sample_episode(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _evaluate(self) -> tuple[float, bool]:
        raise NotImplementedError

    def _environment_state(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def _ctrl_from_action(self, action: np.ndarray) -> np.ndarray:
        """Actuator controls for an action (identity; tasks with normalized grippers convert here)."""
        return action

    def _observation(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {"observation.state": self.joint_positions()}
        if self.environment_state_names:
            obs["observation.environment_state"] = self._environment_state().astype(np.float32)
        if self.render_images:
            obs[self.image_key] = self.render()
        return obs
