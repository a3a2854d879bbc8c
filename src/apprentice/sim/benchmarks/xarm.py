"""`--env.type=xarm`: gym-xarm's XarmLift-v0 (the TD-MPC / FOWM benchmark) and a scripted lift expert.

Keys as lerobot's `xarm` env config (lerobot 0.3.x; later releases dropped it) and `preprocess_observation`
make them: `observation.image` 84x84 from the MJCF's `camera0`, `observation.state` = the package's
`agent_pos` (4), `action` (4: dx, dy, dz, gripper in [-1, 1]); 15 fps, 200-step episodes.

gym-xarm 0.1.1 pins mujoco<3 and is installed without its dependencies beside the mujoco 3.x the other
benchmarks need (see README). Two things in it are adapted here, never patched:
- its pixel observation renders through `MujocoRenderer.render(mode, camera_name=...)`, an argument
  gymnasium 1.x removed; the inner env is built with `obs_type="state"` and this wrapper renders `camera0`
  itself (the package's own call order: `mj_forward`, then the camera image at the observation size);
- its Lift task compares the cube's height in the table frame with a target in the world frame, so
  `is_success` never holds and the lift part of the reward is never paid (gym-xarm PR #14, open). Success
  and reward here are the package's definitions in one frame (cube 0.15 m above where it was placed);
  the package's own values stay in `info["package_is_success"]` / `info["package_reward"]`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from apprentice.sim.base import SimError
from apprentice.sim.benchmarks.base import BenchmarkEnv, import_benchmark
from apprentice.sim.benchmarks.layout import close_at_exit, features, make_renderer, observation_space

TASKS = ("XarmLift-v0",)
INSTALL = "pip install 'apprentice[xarm]' && pip install --no-deps gym-xarm==0.1.1"
STATE_NAMES = ["x", "y", "z", "gripper"]  # the package's robot_state: grasp site position, gripper angle
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "gripper"]


def _import_gym_xarm() -> Any:
    import_benchmark("gymnasium_robotics", "xarm", "gymnasium-robotics")
    try:
        import gym_xarm
    except ImportError as exc:
        raise SimError(f"gym-xarm is not installed ({exc}); install it with: {INSTALL}") from exc
    return gym_xarm


class XarmLiftEnv(BenchmarkEnv):
    fps = 15
    task = "Lift a cube above a height threshold"  # gym-xarm's description (lerobot's env gives none)
    robot_type = "xarm"
    joint_names: ClassVar[list[str]] = ACTION_NAMES
    state_names: ClassVar[list[str]] = STATE_NAMES
    camera = "camera0"
    image_key = "observation.image"
    max_episode_steps = 200
    frames_after_success = 10

    def __init__(
        self,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 84,
        image_width: int = 84,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
        obs_type: str = "pixels_agent_pos",
        gym_task: str = "XarmLift-v0",
    ) -> None:
        if gym_task not in TASKS:
            raise SimError(f"unknown gym-xarm task {gym_task!r}; choose one of {list(TASKS)}")
        if obs_type != "pixels_agent_pos":
            raise SimError(f"xarm: obs_type {obs_type!r} is not supported; use pixels_agent_pos")
        _import_gym_xarm()
        steps = max_episode_steps or type(self).max_episode_steps
        inner = gym.make(
            f"gym_xarm/{gym_task}",
            obs_type="state",
            max_episode_steps=steps,
            observation_width=image_width,
            observation_height=image_height,
            disable_env_checker=True,
        )
        super().__init__(
            inner,
            seed=seed,
            render=render,
            image_height=image_height,
            image_width=image_width,
            terminate_on_success=terminate_on_success,
            max_episode_steps=steps,
        )
        self.lift = inner.unwrapped
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._renderer: Any = None
        self.observation_space = observation_space(self.features)
        close_at_exit(self)

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        images = {self.image_key: (self.image_height, self.image_width)} if self.render_images else {}
        return features(STATE_NAMES, ACTION_NAMES, images)

    # ------------------------------------------------------------------ privileged state (the expert's)
    @property
    def cube_position(self) -> np.ndarray:
        """The cube's position in the table frame (m), like the package's `obj`."""
        return np.asarray(self.lift.obj, dtype=np.float64)

    @property
    def grasp_position(self) -> np.ndarray:
        """The gripper's grasp site in the table frame (m), like the package's `eef`."""
        return np.asarray(self.lift.eef, dtype=np.float64)

    def lift_height(self) -> float:
        """How far (m) the cube is above the height it was placed at, in one frame."""
        return float(self.lift.obj[2] + self.lift.center_of_table[2] - self.lift._init_z)

    # ------------------------------------------------------------------------------------ hooks
    def render(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = make_renderer(self.lift.model, self.image_height, self.image_width, "xarm")
        self.lift._render_callback()
        self._renderer.update_scene(self.lift.data, camera=self.camera)
        return self._renderer.render()

    def _convert(self, raw: Any) -> dict[str, np.ndarray]:
        obs = {"observation.state": np.asarray(self.lift.robot_state, dtype=np.float32)}
        if self.render_images:
            obs[self.image_key] = self.render()
        return obs

    def _inner_action(self, action: np.ndarray) -> np.ndarray:
        # The package asserts the action is inside its Box; a policy's 1.0000001 must not crash an eval.
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _success(self, raw: Any, reward: float, info: dict) -> bool:
        info["package_is_success"] = bool(info.get("is_success", False))
        info["package_reward"] = reward
        return self.lift_height() >= self.lift._z_threshold

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs, _, terminated, truncated, info = super().step(action)
        return obs, self._reward(), terminated, truncated, info

    def _reward(self) -> float:
        """The package's Lift reward with the cube's start height and target in the table frame."""
        lift = self.lift
        obj, eef = lift.obj, lift.eef
        init_z = lift._init_z - lift.center_of_table[2]
        z_target = init_z + lift._z_threshold
        reach = float(np.linalg.norm(obj - eef))
        reach_xy = float(np.linalg.norm(obj[:2] - eef[:2]))
        if reach < 0.05:
            reach_reward = -reach + max(float(lift._action[-1]), 0.0) / 50
        elif reach_xy < 0.05:
            reach_reward = -reach
        else:
            reach_reward = -reach - 2 * abs(float(obj[2] - eef[2]))
        dropped = obj[2] < init_z + 0.005 and reach > 0.02
        if obj[2] >= z_target - 0.01 and not dropped:
            pick_reward = z_target
        elif reach < 0.1 and obj[2] > init_z + 0.005:
            pick_reward = min(z_target, float(obj[2]))
        else:
            pick_reward = 0.0
        return reach_reward / 100 + pick_reward

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.inner.close()


class XarmLiftExpert:
    """Privileged scripted lift: above the cube, down, close, up; proportional moves in the table frame.

    One action unit moves the grasp site ~5 mm per step (the package re-anchors its mocap each step), so
    a gain of 60 per metre saturates beyond ~1.7 cm and settles without overshoot.
    """

    GAIN = 60.0
    HOVER = 0.04  # m above the cube before descending
    CLOSE_STEPS = 8  # the fingers close in ~6 steps

    def __init__(self, env: XarmLiftEnv) -> None:
        self.env = env
        self.phase = "hover"
        self._closing = 0

    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        self.phase = "hover"
        self._closing = 0

    def _move(self, target: np.ndarray, gripper: float) -> np.ndarray:
        delta = np.clip((target - self.env.grasp_position) * self.GAIN, -1.0, 1.0)
        return np.array([*delta, gripper], dtype=np.float32)

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        cube, grasp = self.env.cube_position, self.env.grasp_position
        if self.phase == "hover":
            target = cube + np.array([0.0, 0.0, self.HOVER])
            if np.linalg.norm((target - grasp)[:2]) < 0.004 and abs(target[2] - grasp[2]) < 0.01:
                self.phase = "descend"
            return self._move(target, -1.0)
        if self.phase == "descend":
            if np.linalg.norm(cube - grasp) < 0.006:
                self.phase = "close"
            return self._move(cube, -1.0)
        if self.phase == "close":
            self._closing += 1
            if self._closing >= self.CLOSE_STEPS:
                self.phase = "lift"
            return self._move(cube, 1.0)
        return np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32)
