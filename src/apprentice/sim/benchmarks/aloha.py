"""gym-aloha (`--env.type=aloha`): AlohaTransferCube-v0 and AlohaInsertion-v0 on the real package.

The env is gym-aloha's own (its ViperX MJCF, dm_control physics, seeded object placement, 0..4 reward,
success = reward 4); this wrapper only renames what it returns to the keys lerobot's aloha env config maps
it to (`agent_pos` -> `observation.state`, `pixels/top` -> `observation.images.top`) and the feature
names lerobot's `lerobot/aloha_sim_*` datasets carry, so a dataset recorded here trains in lerobot too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from apprentice.sim import base as _sim_base  # noqa: F401  (sets MUJOCO_GL=egl headless before dm_control loads)
from apprentice.sim.base import SimError
from apprentice.sim.benchmarks.base import BenchmarkEnv, import_benchmark

ARM_JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
# observation.state / action names of lerobot/aloha_sim_* (info.json: names {"motors": [...]}).
JOINT_NAMES = [f"{side}_{j}" for side in ("left", "right") for j in [*ARM_JOINTS, "gripper"]]
GRIPPERS = (6, 13)  # normalized gripper entries: 0 closed, 1 open
EPISODE_LENGTH = 400  # lerobot's AlohaEnv config (gym-aloha registers 300; lerobot passes 400)


def _gym_aloha() -> Any:
    return import_benchmark("gym_aloha", "sim", "gym-aloha")


class AlohaBenchmarkEnv(BenchmarkEnv):
    """One gym-aloha task; `physics` is its dm_control Physics (privileged state for the scripted expert)."""

    fps = 50
    robot_type = "aloha"
    joint_names: ClassVar[list[str]] = JOINT_NAMES
    camera = "top"
    max_episode_steps = EPISODE_LENGTH
    frames_after_success: int | None = None  # recorded demos run the whole episode, as aloha_sim_*_scripted
    gym_id: ClassVar[str] = ""  # gym-aloha's registered id
    gym_task: ClassVar[str] = ""  # gym-aloha's internal task name

    def __init__(
        self,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 480,
        image_width: int = 640,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
    ) -> None:
        if image_height < 1 or image_width < 1 or image_height > 480 or image_width > 640:
            raise SimError(
                f"{self.gym_id}: image size {image_height}x{image_width} is outside 1x1..480x640 (gym-aloha's "
                "offscreen buffer); pass --env.image_height/--env.image_width within it"
            )
        _gym_aloha()
        inner = gym.make(
            f"gym_aloha/{self.gym_id}",
            obs_type="pixels_agent_pos",
            observation_height=image_height,
            observation_width=image_width,
            visualization_height=image_height,
            visualization_width=image_width,
            max_episode_steps=max_episode_steps or self.max_episode_steps,
            disable_env_checker=True,
        )
        super().__init__(
            inner,
            seed=seed,
            render=render,
            image_height=image_height,
            image_width=image_width,
            terminate_on_success=terminate_on_success,
            max_episode_steps=max_episode_steps,
        )
        self._aloha = inner.unwrapped
        self.physics = self._aloha._env.physics
        # gym-aloha's task renders three 480x640 cameras (top, angle, front_close) on every reset and step
        # whatever obs_type asks for (~0.1 s a step on a CPU renderer). Physics, reset and reward stay
        # gym-aloha's; only the observation is built here: `top` alone, at the asked size, when wanted.
        task = self._aloha._env.task
        task.get_observation = self._observe
        self._get_qpos = task.get_qpos
        # Actions are joint targets in radians (grippers normalized); gym-aloha declares Box(-1, 1), which
        # its own datasets leave. The bounds here are the position actuators' ctrlrange, for samplers.
        ctrl = self.physics.model.actuator_ctrlrange
        arm = [ctrl[i] for i in (*range(0, 6), *range(8, 14))]
        low = np.array([*(r[0] for r in arm[:6]), 0.0, *(r[0] for r in arm[6:]), 0.0], dtype=np.float32)
        high = np.array([*(r[1] for r in arm[:6]), 1.0, *(r[1] for r in arm[6:]), 1.0], dtype=np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        spaces: dict[str, gym.Space] = {"observation.state": gym.spaces.Box(-np.inf, np.inf, (14,), np.float32)}
        if render:
            spaces["observation.images.top"] = gym.spaces.Box(0, 255, (image_height, image_width, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    # --------------------------------------------------------------------------------- the env
    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """info.json features as lerobot/aloha_sim_* have them (without the default index columns)."""
        features: dict[str, dict[str, Any]] = {}
        if self.render_images:
            features["observation.images.top"] = {
                "dtype": "video",
                "shape": [self.image_height, self.image_width, 3],
                "names": ["height", "width", "channel"],
            }
        features["observation.state"] = {"dtype": "float32", "shape": [14], "names": {"motors": JOINT_NAMES}}
        features["action"] = {"dtype": "float32", "shape": [14], "names": {"motors": JOINT_NAMES}}
        return features

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        # gym-aloha samples the objects with np.random.RandomState(seed): seed None would draw from the OS.
        # Later unseeded episodes of a seeded env take their seed from its generator, so they replay too.
        if seed is None and self._seeded:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        return super().reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        # gym-aloha ends an episode at its first success; recording and the sim node run on past it.
        return obs, reward, bool(terminated and self.terminate_on_success), truncated, info

    def render(self) -> np.ndarray:
        """The `top` camera at the env's image size, uint8 (H, W, 3)."""
        try:
            return self.physics.render(height=self.image_height, width=self.image_width, camera_id="top")
        except Exception as exc:  # dm_control raises its own types per GL backend
            raise SimError(
                f"{self.gym_id}: cannot render headless ({exc}); set MUJOCO_GL=egl (apt: libegl1 libgl1-mesa-dri) "
                "or MUJOCO_GL=osmesa (apt: libosmesa6) before Python starts, or pass render=False"
            ) from exc

    def close(self) -> None:
        # Free dm_control's GL context now, while its render thread lives: left to its atexit hook, the
        # OSMesa backend prints tracebacks at exit (the thread pool is already shut down by then).
        physics = self.physics
        with physics._contexts_lock:
            if physics._contexts:
                physics._free_rendering_contexts()
        super().close()

    # --------------------------------------------------------------------------- the hooks
    def _observe(self, physics: Any) -> dict[str, Any]:
        """What gym-aloha's `_format_raw_obs` reads: qpos and images/top (an empty frame when not rendering)."""
        top = self.render() if self.render_images else np.zeros((0, 0, 3), np.uint8)
        return {"qpos": self._get_qpos(physics), "images": {"top": top}}

    def _convert(self, raw: Any) -> dict[str, np.ndarray]:
        obs = {"observation.state": np.asarray(raw["agent_pos"], dtype=np.float32)}
        if self.render_images:
            obs["observation.images.top"] = raw["pixels"]["top"]
        return obs

    # -------------------------------------------------------------------- privileged state
    def object_poses(self) -> np.ndarray:
        """The free objects' qpos (xyz + wxyz quaternion each): the cube, or the peg then the socket."""
        return self.physics.data.qpos[16:].copy().reshape(-1, 7)

    def joint_velocities(self) -> np.ndarray:
        """Velocities in joint_names order (rad/s; grippers in normalized units/s), gym-aloha's `qvel`."""
        return np.asarray(self._aloha._env.task.get_qvel(self.physics), dtype=np.float32)

    @property
    def reward(self) -> float:
        """gym-aloha's 0..4 reward for the current physics state."""
        return float(self._aloha._env.task.get_reward(self.physics))


class AlohaTransferCubeEnv(AlohaBenchmarkEnv):
    """The right arm picks the cube and hands it to the left arm (success: held by the left, off the table)."""

    gym_id = "AlohaTransferCube-v0"
    gym_task = "transfer_cube"
    task = "Pick up the cube with the right arm and transfer it to the left arm."


class AlohaInsertionEnv(AlohaBenchmarkEnv):
    """Each arm lifts one object (right: the peg, left: the socket) and the peg goes in (success: it meets the pin)."""

    gym_id = "AlohaInsertion-v0"
    gym_task = "insertion"
    task = "Insert the peg into the socket."
