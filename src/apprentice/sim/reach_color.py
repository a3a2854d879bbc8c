"""`reach_color`: the `reach` scene with a red and a blue target; the instruction says which one to touch.

A test that language conditions a policy: each episode's instruction ("reach the red target" / "reach
the blue target", drawn from the episode's seed) is its `task`, and both targets' positions are in
observation.environment_state in a fixed order (red, then blue), so nothing but the instruction says
which one counts. A policy that ignores the instruction can do no better than ~50%.

`obs_type="targets_in_state"` (`--env.obs_type=targets_in_state`) also appends both targets' xyz (red, then
blue) to observation.state (6 joints + 6 = 12 values), as gym-pusht's `environment_state_agent_pos` puts the
scene into the state vector: VLAs (SmolVLA, π0, π0-FAST) read only observation.state and the cameras, and the
1.6 cm spheres are a few pixels of the 96x128 frame, so this is how they see both targets without first learning
to localise them from pixels. The instruction is still the only thing that says which one counts.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from apprentice.sim.base import SimError
from apprentice.sim.reach import _XML, ReachEnv, ReachExpert

COLORS = ("red", "blue")
INSTRUCTIONS = tuple(f"reach the {color} target" for color in COLORS)
OBS_TYPES = ("environment_state", "targets_in_state")

_RED_TARGET = """    <body name="target" mocap="true" pos="0.2 0 0.1">
      <geom name="target" type="sphere" size="0.016" rgba="0.9 0.1 0.1 1"/>
    </body>
"""
_BLUE_TARGET = """    <body name="target_blue" mocap="true" pos="0.2 0.1 0.1">
      <geom name="target_blue" type="sphere" size="0.016" rgba="0.1 0.2 0.95 1"/>
    </body>
"""
if _RED_TARGET not in _XML:  # the scene is reach's own: fail at import, not with a silently blue-less scene
    raise SimError("reach_color: reach's MJCF no longer has the red target body this task extends")
_COLOR_XML = _XML.replace(_RED_TARGET, _RED_TARGET + _BLUE_TARGET)


class ReachColorEnv(ReachEnv):
    """Touch the instructed one of two targets (>= `min_separation` m apart) within `tolerance` metres."""

    task = INSTRUCTIONS[0]  # the instance's is set per episode
    environment_state_names: ClassVar[list[str]] = [f"{c}_{axis}" for c in COLORS for axis in "xyz"]
    min_separation = 0.08
    xml: ClassVar[str] = _COLOR_XML

    def __init__(
        self,
        seed: int | None = 0,
        render: bool = True,
        tolerance: float = 0.02,
        obs_type: str = "environment_state",
        **kwargs,
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise SimError(f"reach_color: unknown --env.obs_type={obs_type!r}; choose one of {list(OBS_TYPES)}")
        self.obs_type = obs_type  # before the base builds the observation space from state_names
        super().__init__(seed=seed, render=render, tolerance=tolerance, **kwargs)
        self._blue_mocap = self.model.body("target_blue").mocapid[0]
        self.instructed = 0  # index into COLORS

    def _sample_episode(self, rng: np.random.Generator) -> None:
        super()._sample_episode(rng)  # arm pose and the red target, exactly as reach draws them
        red = self.data.mocap_pos[self._target_mocap].copy()
        for _ in range(100):
            r, a, z = rng.uniform(*self.radius_range), rng.uniform(*self.angle_range), rng.uniform(*self.height_range)
            blue = np.array([r * np.cos(a), r * np.sin(a), z])
            if np.linalg.norm(blue - red) >= self.min_separation:
                break
        else:  # pragma: no cover - the workspace is ~6x wider than the separation
            raise SimError("reach_color: could not place the blue target away from the red one")
        self.data.mocap_pos[self._blue_mocap] = blue
        self.instructed = int(rng.integers(len(COLORS)))
        self.task = INSTRUCTIONS[self.instructed]

    @property
    def targets(self) -> np.ndarray:
        """Both targets (2, 3), in COLORS order."""
        return np.stack([self.data.mocap_pos[self._target_mocap], self.data.mocap_pos[self._blue_mocap]]).copy()

    @property
    def target(self) -> np.ndarray:
        """The instructed target."""
        return self.targets[self.instructed]

    @property
    def state_names(self) -> list[str]:
        extra = self.environment_state_names if self.obs_type == "targets_in_state" else []
        return [*self.joint_names, *extra]

    def _environment_state(self) -> np.ndarray:
        return self.targets.reshape(-1).astype(np.float32)

    def _observation(self) -> dict[str, np.ndarray]:
        obs = super()._observation()
        if self.obs_type == "targets_in_state":
            obs["observation.state"] = np.concatenate([obs["observation.state"], self._environment_state()])
        return obs


class ReachColorExpert(ReachExpert):
    """reach's expert aimed at the instructed target (privileged: it reads the env's instruction)."""

    def __init__(self, env: ReachColorEnv, duration_s: float = 1.5) -> None:
        super().__init__(env, duration_s)
        self.env = env

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        both = np.asarray(obs["observation.environment_state"], dtype=np.float64).reshape(2, 3)
        joints = np.asarray(obs["observation.state"])[: len(self.env.joint_names)]  # targets_in_state appends
        super().reset({**obs, "observation.state": joints, "observation.environment_state": both[self.env.instructed]})
