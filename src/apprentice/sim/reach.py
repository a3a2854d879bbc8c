"""`reach`: a 6-joint SO-101-like arm touches a target placed at random each episode.

The demo task: cheap to simulate (no contacts, 96x128 top camera), and learnable by a small ACT in
minutes because the target's xyz is in observation.environment_state as well as in the image.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from apprentice.sim.base import MujocoTask, SimError
from apprentice.sim.ik import min_jerk, solve_ik

JOINT_NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
# Folded pose the arm starts near (radians, JOINT_NAMES order); q = 0 is the arm pointing straight up.
HOME = np.array([0.0, -0.5, 2.3, 0.9, 0.0, 0.3])
# Every joint starts perturbed and the expert moves every joint: a joint that never varies in the demos
# has ~0 std in the dataset stats, and a policy normalizing by it blows up at the first deviation.
HOME_NOISE = np.array([0.1, 0.05, 0.05, 0.05, 0.3, 0.2])
# What the expert does with the joints IK leaves free: roll the wrist level and open the gripper.
GOAL_WRIST_ROLL = 0.0
GOAL_GRIPPER = 1.0

# Link lengths (m) close to the SO-101's: upper arm 0.116, forearm 0.135, wrist + fixed jaw to the tip.
_XML = """
<mujoco model="reach_so101">
  <compiler angle="radian"/>
  <option timestep="{timestep}" integrator="implicitfast">
    <flag contact="disable"/>
  </option>
  <visual>
    <quality shadowsize="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.6 0.6 0.6" specular="0 0 0"/>
  </visual>
  <default>
    <joint damping="0.05" armature="0.005"/>
    <geom density="600" rgba="0.95 0.85 0.25 1"/>
    <position kp="20" kv="0.6"/>
  </default>
  <worldbody>
    <geom name="table" type="plane" size="0.6 0.6 0.01" pos="0.15 0 0" rgba="0.55 0.6 0.65 1"/>
    <geom name="base" type="cylinder" size="0.045 0.025" pos="0 0 0.025" rgba="0.2 0.2 0.2 1"/>
    <camera name="top" pos="0.12 0 0.8" xyaxes="0 -1 0 1 0 0" fovy="45"/>
    <body name="target" mocap="true" pos="0.2 0 0.1">
      <geom name="target" type="sphere" size="0.016" rgba="0.9 0.1 0.1 1"/>
    </body>
    <body name="shoulder" pos="0 0 0.05" gravcomp="1">
      <joint name="shoulder_pan" axis="0 0 1" range="-1.92 1.92"/>
      <geom type="cylinder" size="0.03 0.025" pos="0 0 0.025"/>
      <body name="upper_arm" pos="0 0 0.05" gravcomp="1">
        <joint name="shoulder_lift" axis="0 1 0" range="-1.75 1.75"/>
        <geom type="capsule" size="0.018" fromto="0 0 0 0 0 0.116"/>
        <body name="lower_arm" pos="0 0 0.116" gravcomp="1">
          <joint name="elbow_flex" axis="0 1 0" range="-1.69 2.9"/>
          <geom type="capsule" size="0.016" fromto="0 0 0 0 0 0.135"/>
          <body name="wrist" pos="0 0 0.135" gravcomp="1">
            <joint name="wrist_flex" axis="0 1 0" range="-1.66 1.66"/>
            <geom type="capsule" size="0.014" fromto="0 0 0 0 0 0.05" rgba="0.2 0.2 0.2 1"/>
            <body name="hand" pos="0 0 0.05" gravcomp="1">
              <joint name="wrist_roll" axis="0 0 1" range="-2.74 2.84"/>
              <geom type="box" size="0.02 0.006 0.035" pos="0 -0.01 0.035"/>
              <site name="tip" pos="0 -0.01 0.075" size="0.006" rgba="0.1 0.1 0.1 1"/>
              <body name="jaw" pos="0 0.006 0.01" gravcomp="1">
                <joint name="gripper" axis="1 0 0" range="-0.17 1.75"/>
                <geom type="box" size="0.015 0.004 0.03" pos="0 0.004 0.03" rgba="0.2 0.2 0.2 1"/>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="shoulder_pan" joint="shoulder_pan" ctrlrange="-1.92 1.92"/>
    <position name="shoulder_lift" joint="shoulder_lift" ctrlrange="-1.75 1.75"/>
    <position name="elbow_flex" joint="elbow_flex" ctrlrange="-1.69 2.9"/>
    <position name="wrist_flex" joint="wrist_flex" ctrlrange="-1.66 1.66"/>
    <position name="wrist_roll" joint="wrist_roll" ctrlrange="-2.74 2.84" kp="5" kv="0.1"/>
    <position name="gripper" joint="gripper" ctrlrange="-0.17 1.75" kp="5" kv="0.1"/>
  </actuator>
</mujoco>
"""


class ReachEnv(MujocoTask):
    """Gripper tip to a random target within `tolerance` metres; 30 fps, up to 4 s per episode."""

    fps = 30
    task = "Move the gripper tip to the red target."
    robot_type = "sim_so101"
    joint_names: ClassVar[list[str]] = JOINT_NAMES
    environment_state_names: ClassVar[list[str]] = ["target_x", "target_y", "target_z"]
    max_episode_steps = 120
    xml: ClassVar[str] = _XML  # the MJCF (with a {timestep} field); reach_color adds a second target
    frames_after_success: int | None = 20  # recorded after the first success: the settle at the goal

    # Targets: in front of the arm, polar in the table plane, at heights the tip reaches from above.
    radius_range = (0.16, 0.28)
    angle_range = (-0.7, 0.7)
    height_range = (0.04, 0.12)

    def __init__(self, seed: int | None = 0, render: bool = True, tolerance: float = 0.02, **kwargs) -> None:
        super().__init__(self.xml.format(timestep=1.0 / 300.0), seed=seed, render=render, **kwargs)
        if tolerance <= 0:
            raise SimError(f"reach: tolerance must be > 0 metres, got {tolerance}")
        self.tolerance = tolerance
        self._tip = self.model.site("tip").id
        self._target_mocap = self.model.body("target").mocapid[0]

    def _sample_episode(self, rng: np.random.Generator) -> None:
        q = HOME + rng.uniform(-1.0, 1.0, size=HOME.shape) * HOME_NOISE
        for name, value in zip(JOINT_NAMES, q):
            self.data.joint(name).qpos[0] = value
        self.data.ctrl[:] = q
        r = rng.uniform(*self.radius_range)
        a = rng.uniform(*self.angle_range)
        z = rng.uniform(*self.height_range)
        self.data.mocap_pos[self._target_mocap] = [r * np.cos(a), r * np.sin(a), z]

    @property
    def target(self) -> np.ndarray:
        return self.data.mocap_pos[self._target_mocap].copy()

    @property
    def tip(self) -> np.ndarray:
        return self.data.site_xpos[self._tip].copy()

    def _environment_state(self) -> np.ndarray:
        return self.target.astype(np.float32)

    def _evaluate(self) -> tuple[float, bool]:
        dist = float(np.linalg.norm(self.tip - self.target))
        # Dense reward: 1 at the target, 0 at 25 cm or more; success is the distance tolerance.
        return max(0.0, 1.0 - dist / 0.25), dist <= self.tolerance


class ReachExpert:
    """Solves IK for the target once per episode, then follows a minimum-jerk joint path to it."""

    def __init__(self, env: ReachEnv, duration_s: float = 1.5) -> None:
        self.model = env.model
        self.steps = max(1, round(duration_s * env.fps))
        self._q0 = HOME.copy()
        self._goal = HOME.copy()
        self._k = 0
        self.ik_error = 0.0

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        q0 = np.asarray(obs["observation.state"], dtype=np.float64)
        target = np.asarray(obs["observation.environment_state"], dtype=np.float64)
        arm = JOINT_NAMES[:4]
        # IK with the wrist roll it will have at the goal: the tip sits 1 cm off the roll axis.
        start = {**dict(zip(JOINT_NAMES, q0)), "wrist_roll": GOAL_WRIST_ROLL, "gripper": GOAL_GRIPPER}
        # First a posture with the tip pointing down where it can, then exact position from there:
        # the soft axis term alone trades up to ~2 cm of position for orientation at the workspace edge.
        posture, _ = solve_ik(self.model, "tip", target, arm, start, target_axis=np.array([0.0, 0.0, -1.0]))
        solution, self.ik_error = solve_ik(self.model, "tip", target, arm, {**start, **posture})
        self._q0 = q0
        self._goal = q0.copy()
        self._goal[:4] = [solution[n] for n in arm]
        self._goal[4:] = [GOAL_WRIST_ROLL, GOAL_GRIPPER]
        self._k = 0

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        self._k += 1
        alpha = min_jerk(self._k / self.steps)
        return (self._q0 + alpha * (self._goal - self._q0)).astype(np.float32)
