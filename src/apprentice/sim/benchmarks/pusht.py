"""`pusht`: gym-pusht's PushT-v0 with the observation keys lerobot's pusht env wrapper gives a policy.

obs_type `pixels_agent_pos` (lerobot's default): `observation.image` uint8 (96, 96, 3) and
`observation.state` float32 (2,) — the pusher's xy in the 512x512 px workspace, the `lerobot/pusht` layout;
`environment_state_agent_pos`: `observation.environment_state` float32 (16,) — the T's 8 keypoints
(x0, y0, x1, y1, ...) — and `observation.state`, the `lerobot/pusht_keypoints` layout. The action is the
pusher's target xy in [0, 512]^2; reward = goal coverage / 0.95 (clipped to 1), success = coverage > 95%,
both gym-pusht's own.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from apprentice.sim.base import SimError
from apprentice.sim.benchmarks.base import BenchmarkEnv, import_benchmark

OBS_TYPES = ("pixels_agent_pos", "environment_state_agent_pos")
GYM_ID = "gym_pusht/PushT-v0"
# lerobot's PushtEnv passes 384x384 as the rendering (video) size; observations stay gym-pusht's 96x96.
VISUALIZATION_SIZE = 384


def _motors(n: int) -> dict[str, list[str]]:
    """lerobot/pusht's names: its v1 → v2 conversion named every vector's entries motor_0, motor_1, ..."""
    return {"motors": [f"motor_{i}" for i in range(n)]}


class PushTEnv(BenchmarkEnv):
    """gym-pusht behind the dataset-key interface; `inner` is the `gym.make` env lerobot evaluates in."""

    fps = 10
    task = "Push the T-shaped block onto the T-shaped target."  # lerobot/pusht's task
    robot_type = "unknown"  # what lerobot/pusht's info.json says
    joint_names: ClassVar[list[str]] = ["motor_0", "motor_1"]
    camera = "top"  # names the sim node's topic (cameras/top/image_raw); the dataset key is image_key
    image_key = "observation.image"
    max_episode_steps = 300
    frames_after_success: int | None = 5  # recorded after the first success: the block resting on the goal

    def __init__(
        self,
        *,
        obs_type: str = "pixels_agent_pos",
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 96,
        image_width: int = 96,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise SimError(f"pusht: unknown --env.obs_type={obs_type!r}; choose one of {list(OBS_TYPES)}")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # gym-pusht imports pygame (a banner on stdout)
        import_benchmark("gym_pusht", "sim", "gym-pusht")
        self.obs_type = obs_type
        pixels = obs_type == "pixels_agent_pos" and render
        self.environment_state_names = [] if obs_type == "pixels_agent_pos" else _motors(16)["motors"]
        # Without images the inner env must not draw them: a 96x96 frame costs ~30 ms of pygame per step.
        inner = gym.make(
            GYM_ID,
            disable_env_checker=True,
            obs_type="pixels_agent_pos" if pixels else "environment_state_agent_pos",
            render_mode="rgb_array",
            observation_height=image_height,
            observation_width=image_width,
            visualization_width=VISUALIZATION_SIZE,
            visualization_height=VISUALIZATION_SIZE,
            max_episode_steps=max_episode_steps or self.max_episode_steps,
        )
        super().__init__(
            inner,
            seed=seed,
            render=pixels,
            image_height=image_height,
            image_width=image_width,
            terminate_on_success=terminate_on_success,
            max_episode_steps=max_episode_steps,
        )
        spaces: dict[str, gym.Space] = {"observation.state": gym.spaces.Box(0.0, 512.0, (2,), np.float32)}
        if self.environment_state_names:
            spaces["observation.environment_state"] = gym.spaces.Box(0.0, 512.0, (16,), np.float32)
        if pixels:
            spaces[self.image_key] = gym.spaces.Box(0, 255, (image_height, image_width, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """lerobot/pusht's (pixels) or lerobot/pusht_keypoints' (environment state) feature layout."""
        features: dict[str, dict[str, Any]] = {}
        if self.render_images:
            features[self.image_key] = {
                "dtype": "video",
                "shape": [self.image_height, self.image_width, 3],
                "names": ["height", "width", "channel"],
            }
        if self.environment_state_names:
            features["observation.environment_state"] = {"dtype": "float32", "shape": [16], "names": _motors(16)}
        features["observation.state"] = {"dtype": "float32", "shape": [2], "names": _motors(2)}
        features["action"] = {"dtype": "float32", "shape": [2], "names": _motors(2)}
        return features

    @property
    def pusht(self) -> Any:
        """gym-pusht's own PushTEnv (its pymunk space, agent, block): the privileged state the expert reads."""
        return self.inner.unwrapped

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        # gym-pusht ends the episode at success itself; recording and the sim node go on past it.
        return obs, reward, terminated and self.terminate_on_success, truncated, info

    def _convert(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = {"observation.state": np.asarray(raw["agent_pos"], dtype=np.float32)}
        if self.environment_state_names:
            obs["observation.environment_state"] = np.asarray(raw["environment_state"], dtype=np.float32)
        if self.render_images:
            obs[self.image_key] = raw["pixels"]
        return obs
