"""`--env.type=gym_hil`: gym-hil's PandaPickCube variants (the HIL-SERL sim) and a scripted pick expert.

Keys as lerobot's gym_manipulator makes them from gym-hil (`image_obs=True`, then its observation
processor): `observation.images.front` and `observation.images.wrist` 128x128, `observation.state` (18:
joint positions, joint velocities, gripper command, TCP position), `action` (4: dx, dy, dz in [-1, 1],
gripper in [0, 2]: 0 open, 1 stay, 2 close); 10 fps, 100-step episodes. The state variant
(`obs_type="environment_state_agent_pos"`, gym-hil's `image_obs=False`) has `observation.environment_state`
(the cube's position) instead of the cameras. `PandaPickCubeBase-v0` is the raw env: a 7-d action (xyz
mocap deltas in m, rotation unused, gripper delta).

The Gamepad/Keyboard variants open a MuJoCo viewer and read an input device inside the env; headless and
with Apprentice's own teleop doing that job, they are built here as PandaPickCube-v0 with their gripper
penalty (`info["discrete_penalty"]`) and no viewer or device.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from apprentice.sim.base import SimError
from apprentice.sim.benchmarks.base import BenchmarkEnv, import_benchmark
from apprentice.sim.benchmarks.layout import close_at_exit, features, make_renderer, observation_space

# gym-hil task -> gripper penalty of its registration (None: the raw env, no wrappers)
TASKS: dict[str, float | None] = {
    "PandaPickCubeBase-v0": None,
    "PandaPickCube-v0": -0.05,
    "PandaPickCubeGamepad-v0": -0.02,
    "PandaPickCubeKeyboard-v0": -0.05,
}
OBS_TYPES = ("pixels_agent_pos", "environment_state_agent_pos")
STATE_NAMES = (
    [f"joint{i}.pos" for i in range(1, 8)]
    + [f"joint{i}.vel" for i in range(1, 8)]
    + ["gripper", "tcp.x", "tcp.y", "tcp.z"]
)
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "gripper"]  # lerobot's gym_hil recording names
BASE_ACTION_NAMES = ["x", "y", "z", "rx", "ry", "rz", "gripper"]
CAMERAS = ("front", "wrist")
# gym-hil's cube sampling region (x, y) when random_block_position is on
_SAMPLING_BOUNDS = np.array([[0.3, -0.15], [0.5, 0.15]])


class PandaPickCubeEnv(BenchmarkEnv):
    gym_task = "PandaPickCube-v0"
    fps = 10
    task = "pick_cube"  # the task lerobot's gym_hil recording example stores
    robot_type = "panda"
    joint_names: ClassVar[list[str]] = ACTION_NAMES
    camera = "front"
    image_key = "observation.images.front"
    max_episode_steps = 100
    frames_after_success = 5

    def __init__(
        self,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 128,
        image_width: int = 128,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
        obs_type: str = "pixels_agent_pos",
        random_block_position: bool = False,
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise SimError(f"gym_hil: unknown obs_type {obs_type!r}; choose one of {list(OBS_TYPES)}")
        gym_hil = import_benchmark("gym_hil", "hil", "gym-hil")
        self.obs_type = obs_type
        self.random_block_position = random_block_position
        images = render and obs_type == "pixels_agent_pos"
        steps = max_episode_steps or type(self).max_episode_steps
        spec = gym_hil.GymRenderingSpec(height=image_height, width=image_width)
        base = {"image_obs": images, "render_spec": spec, "max_episode_steps": steps, "disable_env_checker": True}
        penalty = TASKS[self.gym_task]
        if penalty is None:
            inner = gym.make("gym_hil/PandaPickCubeBase-v0", **base)
            self.joint_names = BASE_ACTION_NAMES
        else:
            inner = gym.make("gym_hil/PandaPickCube-v0", **base, gripper_penalty=penalty, reset_delay_seconds=0.0)
        super().__init__(
            inner,
            seed=seed,
            render=images,
            image_height=image_height,
            image_width=image_width,
            terminate_on_success=terminate_on_success,
            max_episode_steps=steps,
        )
        self.panda = inner.unwrapped
        self.action_space = gym.spaces.Box(
            inner.action_space.low.astype(np.float32), inner.action_space.high.astype(np.float32), dtype=np.float32
        )
        self.environment_state_names = ["cube.x", "cube.y", "cube.z"] if obs_type != "pixels_agent_pos" else []
        self.observation_space = observation_space(self.features)
        close_at_exit(self)

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        size = (self.image_height, self.image_width)
        images = {f"observation.images.{cam}": size for cam in CAMERAS} if self.render_images else {}
        return features(STATE_NAMES, self.joint_names, images, self.environment_state_names)

    # ------------------------------------------------------------------ privileged state (the expert's)
    @property
    def cube_position(self) -> np.ndarray:
        return self.panda.data.sensor("block_pos").data.astype(np.float64)

    @property
    def tcp_position(self) -> np.ndarray:
        return self.panda.data.sensor("2f85/pinch_pos").data.astype(np.float64)

    # ------------------------------------------------------------------------------------ hooks
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, info = super().reset(seed=seed, options=options)
        if self.random_block_position:
            # gym-hil draws this from the global np.random; drawn from the env's seeded generator here so a
            # seed gives the same cube, with the package's bounds and its own post-placement bookkeeping.
            import mujoco

            xy = self.np_random.uniform(*_SAMPLING_BOUNDS)
            data = self.panda.data
            data.jnt("block").qpos[:3] = (*xy, self.panda._block_z)
            mujoco.mj_forward(self.panda.model, data)
            self.panda._z_init = data.sensor("block_pos").data[2]
            self.panda._z_success = self.panda._z_init + 0.1
            obs = self._convert(self.panda._compute_observation())
        return obs, info

    def render(self) -> np.ndarray:
        """The front camera (what `sim_node` publishes and eval videos show)."""
        if self.render_images:
            return self.panda.render()[0]
        if getattr(self, "_renderer", None) is None:
            self._renderer = make_renderer(self.panda.model, self.image_height, self.image_width, "gym_hil")
        self._renderer.update_scene(self.panda.data, camera=self.panda.camera_id[0])
        return self._renderer.render()

    def _convert(self, raw: dict) -> dict[str, np.ndarray]:
        obs = {"observation.state": np.asarray(raw["agent_pos"], dtype=np.float32)}
        if self.environment_state_names:
            obs["observation.environment_state"] = self.cube_position.astype(np.float32)
        if self.render_images:
            for cam in CAMERAS:
                obs[f"observation.images.{cam}"] = np.ascontiguousarray(raw["pixels"][cam])
        return obs

    def _inner_action(self, action: np.ndarray) -> np.ndarray:
        return np.clip(action, self.action_space.low, self.action_space.high)

    def _success(self, raw: Any, reward: float, info: dict) -> bool:
        return bool(info.get("succeed", False))

    def close(self) -> None:
        renderer = getattr(self, "_renderer", None)
        if renderer is not None:
            renderer.close()
            self._renderer = None
        self.inner.close()


class PandaPickCubeBaseEnv(PandaPickCubeEnv):
    gym_task = "PandaPickCubeBase-v0"


class PandaPickCubeGamepadEnv(PandaPickCubeEnv):
    gym_task = "PandaPickCubeGamepad-v0"


class PandaPickCubeKeyboardEnv(PandaPickCubeEnv):
    gym_task = "PandaPickCubeKeyboard-v0"


class PandaPickCubeExpert:
    """Privileged scripted pick: over the cube, down, close, up, in end-effector deltas.

    The wrapped envs move the mocap target 2.5 cm per unit of action, and the operational-space controller
    tracks it within a step or two; the raw Base env takes metres directly.
    """

    HOVER = 0.06  # m above the cube's centre before descending
    CLOSE_STEPS = 4

    def __init__(self, env: PandaPickCubeEnv) -> None:
        self.env = env
        self.raw = TASKS[env.gym_task] is None
        self.step_size = 1.0 if self.raw else 0.025
        self.phase = "hover"
        self._closing = 0

    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        self.phase = "hover"
        self._closing = 0

    def _action(self, target: np.ndarray, grip: str) -> np.ndarray:
        limit = 0.025 if self.raw else 1.0  # the raw env: at most 2.5 cm per step, like the wrapped ones
        delta = np.clip((target - self.env.tcp_position) / self.step_size, -limit, limit)
        if self.raw:
            g = {"open": -1.0, "stay": 0.0, "close": 1.0}[grip]
            return np.array([*delta, 0.0, 0.0, 0.0, g], dtype=np.float32)
        return np.array([*delta, {"open": 0.0, "stay": 1.0, "close": 2.0}[grip]], dtype=np.float32)

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        cube, tcp = self.env.cube_position, self.env.tcp_position
        if self.phase == "hover":
            target = cube + np.array([0.0, 0.0, self.HOVER])
            if np.linalg.norm(target - tcp) < 0.01:
                self.phase = "descend"
            return self._action(target, "open")
        if self.phase == "descend":
            if np.linalg.norm(cube - tcp) < 0.006:
                self.phase = "close"
            return self._action(cube, "open")
        if self.phase == "close":
            self._closing += 1
            if self._closing >= self.CLOSE_STEPS:
                self.phase = "lift"
            return self._action(cube, "close")
        return self._action(cube + np.array([0.0, 0.0, 0.2]), "close")
