"""`aloha_transfer_cube`: two 6-DoF ViperX-like arms hand a cube over, as LeRobot's AlohaTransferCube-v0.

Our own MJCF (primitives, no meshes): observation/action layout, fps (50), episode length (400 steps),
`top` camera (480x640) and the 0..4 reward follow gym-aloha, so datasets line up with lerobot/aloha_sim_*:
state/action = [left waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, gripper, right ...],
joints in radians, grippers normalized (0 closed, 1 open).
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from apprentice.sim.base import MujocoTask

ARM_JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
JOINT_NAMES = [f"{side}_{j}" for side in ("left", "right") for j in [*ARM_JOINTS, "gripper"]]
BASE_X = 0.42  # arms' bases at x = -0.42 (left, facing +x) and +0.42 (right, facing -x)
FINGER_OPEN = 0.045  # finger slide (m) at gripper = 1; the fingers' inner faces are this far from centre
CUBE_HALF = 0.02
CUBE_X_RANGE = (0.06, 0.20)  # the cube starts on the right arm's side of the table
CUBE_Y_RANGE = (-0.08, 0.08)


def _arm(side: str, x: float, yaw: float) -> str:
    p = f"{side}_"
    # Link lengths near the ViperX 300's (upper arm 0.28 + 0.05 offset, forearm 0.25, wrist 0.06).
    return f"""
    <body name="{p}base" pos="{x} 0 0" euler="0 0 {yaw}">
      <geom type="cylinder" size="0.05 0.02" pos="0 0 0.02" rgba="0.15 0.15 0.15 1"/>
      <body name="{p}waist_link" pos="0 0 0.04" gravcomp="1">
        <joint name="{p}waist" axis="0 0 1" range="-3.14 3.14"/>
        <geom type="cylinder" size="0.035 0.03" pos="0 0 0.03"/>
        <body name="{p}upper_arm" pos="0 0 0.06" gravcomp="1">
          <joint name="{p}shoulder" axis="0 1 0" range="-1.85 1.26"/>
          <geom type="capsule" size="0.022" fromto="0 0 0 0.05 0 0.28"/>
          <body name="{p}forearm" pos="0.05 0 0.28" gravcomp="1">
            <joint name="{p}elbow" axis="0 1 0" range="-1.76 1.6"/>
            <geom type="capsule" size="0.02" fromto="0 0 0 0.1 0 0"/>
            <body name="{p}forearm_roll_link" pos="0.1 0 0" gravcomp="1">
              <joint name="{p}forearm_roll" axis="1 0 0" range="-3.14 3.14"/>
              <geom type="capsule" size="0.018" fromto="0 0 0 0.15 0 0"/>
              <body name="{p}wrist" pos="0.15 0 0" gravcomp="1">
                <joint name="{p}wrist_angle" axis="0 1 0" range="-1.87 2.23"/>
                <geom type="capsule" size="0.016" fromto="0 0 0 0.06 0 0" rgba="0.15 0.15 0.15 1"/>
                <body name="{p}gripper_link" pos="0.06 0 0" gravcomp="1">
                  <joint name="{p}wrist_rotate" axis="1 0 0" range="-3.14 3.14"/>
                  <geom type="box" size="0.02 0.055 0.012" pos="0.02 0 0" rgba="0.15 0.15 0.15 1"/>
                  <site name="{p}ee" pos="0.11 0 0" size="0.005" rgba="0 0 0 0"/>
                  <body name="{p}finger_a" pos="0.04 0 0" gravcomp="1">
                    <joint name="{p}finger_a" type="slide" axis="0 1 0" range="0 {FINGER_OPEN}"/>
                    <geom name="{p}finger_a" class="finger" pos="0.04 0.004 0"/>
                  </body>
                  <body name="{p}finger_b" pos="0.04 0 0" gravcomp="1">
                    <joint name="{p}finger_b" type="slide" axis="0 -1 0" range="0 {FINGER_OPEN}"/>
                    <geom name="{p}finger_b" class="finger" pos="0.04 -0.004 0"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>"""


def _actuators(side: str) -> str:
    p = f"{side}_"
    arm = "\n".join(f'    <position name="{p}{j}" joint="{p}{j}" ctrlrange="-3.14 3.14"/>' for j in ARM_JOINTS)
    grip = (
        f'    <position name="{p}gripper" joint="{p}finger_a" ctrlrange="0 {FINGER_OPEN}" kp="300" kv="3"'
        ' forcerange="-8 8"/>'
    )
    return f"{arm}\n{grip}"


def scene_xml(objects: str) -> str:
    """The bimanual ALOHA scene (table, two arms, top camera) with `objects` (MJCF bodies) on the table."""
    return f"""
<mujoco model="aloha">
  <compiler angle="radian"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.6 0.6 0.6" specular="0 0 0"/>
  </visual>
  <default>
    <joint damping="0.5" armature="0.05"/>
    <geom density="500" rgba="0.75 0.75 0.78 1" contype="0" conaffinity="0"/>
    <position kp="150" kv="12" forcerange="-40 40"/>
    <default class="finger">
      <geom type="box" size="0.04 0.004 0.004" rgba="0.1 0.1 0.1 1" contype="1" conaffinity="1"
            friction="1.5 0.02 0.001" condim="4"/>
    </default>
  </default>
  <worldbody>
    <geom name="table" type="plane" size="0.7 0.45 0.01" rgba="0.35 0.3 0.25 1" contype="1" conaffinity="1"/>
    <camera name="top" pos="0 -0.55 0.95" xyaxes="1 0 0 0 0.84 0.543" fovy="50"/>
    {_arm("left", -BASE_X, 0.0)}
    {_arm("right", BASE_X, np.pi)}
    {objects}
  </worldbody>
  <equality>
    <joint joint1="left_finger_b" joint2="left_finger_a"/>
    <joint joint1="right_finger_b" joint2="right_finger_a"/>
  </equality>
  <actuator>
{_actuators("left")}
{_actuators("right")}
  </actuator>
</mujoco>
"""


CUBE_XML = f"""
    <body name="cube" pos="0.1 0 {CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" rgba="0.9 0.1 0.1 1" mass="0.05"
            contype="1" conaffinity="1" friction="1.5 0.02 0.001" condim="4"/>
    </body>"""
FINGERS = ("left_finger_a", "left_finger_b", "right_finger_a", "right_finger_b")

# Where the arms start: grippers above their side of the table, pointing down, open.
READY_EE = {"left": np.array([-0.22, 0.0, 0.25]), "right": np.array([0.22, 0.0, 0.25])}


def down_rotation(side: str) -> np.ndarray:
    """Gripper frame pointing at the table (approach axis -z), fingers closing along world y."""
    sign = 1.0 if side == "left" else -1.0
    x = np.array([0.0, 0.0, -1.0])
    y = np.array([0.0, sign, 0.0])
    return np.column_stack([x, y, np.cross(x, y)])


class AlohaEnv(MujocoTask):
    """What the ALOHA tasks share: arms, normalized grippers, ready pose, contact queries."""

    fps = 50
    robot_type = "aloha"
    joint_names: ClassVar[list[str]] = JOINT_NAMES
    max_episode_steps = 400
    # Recorded demos run the whole 400 steps, as lerobot/aloha_sim_*_scripted do.
    frames_after_success: int | None = None
    objects_xml = CUBE_XML
    object_geoms: ClassVar[tuple[str, ...]] = ("cube",)

    def __init__(self, seed: int | None = 0, render: bool = True, **kwargs) -> None:
        kwargs.setdefault("image_height", 480)
        kwargs.setdefault("image_width", 640)
        super().__init__(scene_xml(self.objects_xml), seed=seed, render=render, **kwargs)
        # Arm joints in radians, grippers normalized: the action space LeRobot's ALOHA policies output.
        high = np.array([3.14] * 6 + [1.0] + [3.14] * 6 + [1.0], dtype=np.float32)
        low = np.where(high == 1.0, 0.0, -high).astype(np.float32)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        self._geoms = {name: self.model.geom(name).id for name in ("table", *self.object_geoms, *FINGERS)}
        self.ready_q = self._solve_ready_pose()

    def _solve_ready_pose(self) -> dict[str, float]:
        from apprentice.sim.ik import solve_ik

        q: dict[str, float] = {}
        for side in ("left", "right"):
            joints = [f"{side}_{j}" for j in ARM_JOINTS]
            start = {f"{side}_shoulder": -0.3, f"{side}_elbow": 0.6, f"{side}_wrist_angle": 1.2}
            solution, _ = solve_ik(
                self.model, f"{side}_ee", READY_EE[side], joints, start, target_rot=down_rotation(side)
            )
            q.update(solution)
        return q

    def _reset_arms(self) -> None:
        for name, value in self.ready_q.items():
            self.data.joint(name).qpos[0] = value
        for side in ("left", "right"):
            self.data.joint(f"{side}_finger_a").qpos[0] = FINGER_OPEN
            self.data.joint(f"{side}_finger_b").qpos[0] = FINGER_OPEN
        self.data.ctrl[:] = self._ctrl_from_action(self.joint_positions())

    def _place(self, joint: str, xyz: list[float]) -> None:
        adr = self.model.joint(joint).qposadr[0]
        self.data.qpos[adr : adr + 7] = [*xyz, 1, 0, 0, 0]

    def body_position(self, body: str) -> np.ndarray:
        return self.data.body(body).xpos.copy()

    def joint_positions(self) -> np.ndarray:
        values = []
        for side in ("left", "right"):
            values += [self.data.joint(f"{side}_{j}").qpos[0] for j in ARM_JOINTS]
            values.append(self.data.joint(f"{side}_finger_a").qpos[0] / FINGER_OPEN)
        return np.asarray(values, dtype=np.float32)

    def _ctrl_from_action(self, action: np.ndarray) -> np.ndarray:
        ctrl = np.asarray(action, dtype=np.float64).copy()
        ctrl[[6, 13]] = np.clip(ctrl[[6, 13]], 0.0, 1.0) * FINGER_OPEN
        return ctrl

    def _touching(self, geoms: tuple[str, ...]) -> set[str]:
        """Names of the known geoms in contact with any of `geoms`."""
        ids = {self._geoms[g] for g in geoms}
        names = {v: k for k, v in self._geoms.items()}
        touching = set()
        for contact in self.data.contact[: self.data.ncon]:
            for mine, other in ((contact.geom1, contact.geom2), (contact.geom2, contact.geom1)):
                if mine in ids and other in names and other not in ids:
                    touching.add(names[other])
        return touching


class AlohaTransferCubeEnv(AlohaEnv):
    """Right arm picks the cube, hands it to the left arm. Reward 0..4 as gym-aloha; success = 4."""

    task = "Pick up the cube with the right arm and transfer it to the left arm."

    def _sample_episode(self, rng: np.random.Generator) -> None:
        self._reset_arms()
        self._place("cube", [rng.uniform(*CUBE_X_RANGE), rng.uniform(*CUBE_Y_RANGE), CUBE_HALF])

    @property
    def cube_position(self) -> np.ndarray:
        return self.body_position("cube")

    def _evaluate(self) -> tuple[float, bool]:
        touching = self._touching(("cube",))
        left = bool(touching & {"left_finger_a", "left_finger_b"})
        right = bool(touching & {"right_finger_a", "right_finger_b"})
        table = "table" in touching
        reward = 0
        if right:
            reward = 1
        if right and not table:
            reward = 2  # lifted
        if left:
            reward = 3  # transfer attempted
        if left and not table:
            reward = 4  # transferred
        return float(reward), reward == 4


class AlohaTransferCubeExpert:
    """End-effector waypoints (approach, grasp, lift, hand over, release) → IK → joint targets.

    Privileged: reads the cube's pose from the simulator at reset and during the hand-over.
    """

    def __init__(self, env: AlohaTransferCubeEnv) -> None:
        from apprentice.sim.aloha_expert import TransferCubePlanner

        self.env = env
        self.planner = TransferCubePlanner(env)

    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        self.planner.reset(self.env.cube_position)

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        return self.planner.step(self.env.cube_position)


def contact_pairs(model: mujoco.MjModel, data: mujoco.MjData) -> list[tuple[str, str]]:
    """(geom, geom) names of the current contacts; for debugging grasps."""
    return [(model.geom(c.geom1).name, model.geom(c.geom2).name) for c in data.contact[: data.ncon]]
