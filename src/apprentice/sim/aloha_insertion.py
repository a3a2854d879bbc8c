"""`aloha_insertion`: the left arm picks a socket, the right arm a peg, and inserts it (AlohaInsertion-v0).

Same arms, layout, fps and camera as transfer-cube; gym-aloha's 0..4 reward: 1 both grippers touch their
object, 2 both lifted, 3 peg touches socket (both off the table), 4 peg touches the pin inside (success).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from apprentice.sim.aloha import ARM_JOINTS, READY_EE, AlohaEnv, down_rotation
from apprentice.sim.aloha_expert import Waypoint, target_along
from apprentice.sim.ik import solve_ik

PEG_HALF = (0.10, 0.01, 0.01)  # a 20 cm peg, 2 cm square: gripped at its middle, 10 cm from its tip
SOCKET_INNER, SOCKET_WALL, SOCKET_HALF_LEN = 0.0135, 0.005, 0.04  # 3.5 mm clearance around the peg
SOCKET_OUTER = SOCKET_INNER + SOCKET_WALL
PIN_X = -0.03  # the pin's centre along the socket (its open end is at +SOCKET_HALF_LEN)
_WALL = 'contype="1" conaffinity="1" friction="1.5 0.02 0.001" condim="4" rgba="0.2 0.4 0.9 1"'
OBJECTS_XML = f"""
    <body name="peg" pos="0.14 0 {PEG_HALF[2]}">
      <freejoint name="peg"/>
      <geom name="peg" type="box" size="{PEG_HALF[0]} {PEG_HALF[1]} {PEG_HALF[2]}" rgba="0.9 0.1 0.1 1"
            mass="0.05" contype="1" conaffinity="1" friction="1.5 0.02 0.001" condim="4"/>
    </body>
    <body name="socket" pos="-0.14 0 {SOCKET_OUTER}">
      <freejoint name="socket"/>
      <geom name="socket_top" type="box" pos="0 0 {SOCKET_INNER + SOCKET_WALL / 2}"
            size="{SOCKET_HALF_LEN} {SOCKET_OUTER} {SOCKET_WALL / 2}" mass="0.02" {_WALL}/>
      <geom name="socket_bottom" type="box" pos="0 0 {-SOCKET_INNER - SOCKET_WALL / 2}"
            size="{SOCKET_HALF_LEN} {SOCKET_OUTER} {SOCKET_WALL / 2}" mass="0.02" {_WALL}/>
      <geom name="socket_side_a" type="box" pos="0 {SOCKET_INNER + SOCKET_WALL / 2} 0"
            size="{SOCKET_HALF_LEN} {SOCKET_WALL / 2} {SOCKET_INNER}" mass="0.02" {_WALL}/>
      <geom name="socket_side_b" type="box" pos="0 {-SOCKET_INNER - SOCKET_WALL / 2} 0"
            size="{SOCKET_HALF_LEN} {SOCKET_WALL / 2} {SOCKET_INNER}" mass="0.02" {_WALL}/>
      <geom name="pin" type="box" pos="{PIN_X} 0 0" size="0.004 0.006 0.006" mass="0.005"
            contype="1" conaffinity="1" rgba="0.9 0.9 0.2 1"/>
    </body>"""
SOCKET_GEOMS = ("socket_top", "socket_bottom", "socket_side_a", "socket_side_b")
MEET = np.array([-0.02, 0.0, 0.18])  # where the left arm holds the socket's centre


class AlohaInsertionEnv(AlohaEnv):
    task = "Insert the peg into the socket."
    objects_xml = OBJECTS_XML
    object_geoms: ClassVar[tuple[str, ...]] = ("peg", *SOCKET_GEOMS, "pin")

    def _sample_episode(self, rng: np.random.Generator) -> None:
        self._reset_arms()
        self._place("peg", [rng.uniform(0.10, 0.18), rng.uniform(-0.06, 0.06), PEG_HALF[2]])
        self._place("socket", [rng.uniform(-0.18, -0.10), rng.uniform(-0.06, 0.06), SOCKET_OUTER])

    def _evaluate(self) -> tuple[float, bool]:
        peg = self._touching(("peg",))
        socket = self._touching((*SOCKET_GEOMS, "pin"))
        touch_right = bool(peg & {"right_finger_a", "right_finger_b"})
        touch_left = bool(socket & {"left_finger_a", "left_finger_b"})
        on_table = "table" in peg or "table" in socket
        peg_in_socket = bool(peg & set(SOCKET_GEOMS)) or "pin" in peg
        reward = 0
        if touch_left and touch_right:
            reward = 1
        if touch_left and touch_right and not on_table:
            reward = 2
        if peg_in_socket and not on_table:
            reward = 3
        if "pin" in peg and not on_table:
            reward = 4
        return float(reward), reward == 4


class AlohaInsertionExpert:
    """Both arms pick their object from above, lift to a meeting pose, the right arm slides the peg in.

    Privileged: the insertion targets follow the socket and peg as the grippers really hold them.
    """

    def __init__(self, env: AlohaInsertionEnv) -> None:
        self.env = env
        self.plans: dict[str, list[Waypoint]] = {}
        self.q: dict[str, float] = {}
        self.k = 0

    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        peg, socket = self.env.body_position("peg"), self.env.body_position("socket")
        plans = {}
        for side, obj, meet in (("left", socket, MEET), ("right", peg, None)):
            down = down_rotation(side)
            plans[side] = [
                Waypoint(0.0, READY_EE[side], down, 1),
                Waypoint(1.0, obj + np.array([0.0, 0.0, 0.10]), down, 1),
                Waypoint(1.8, obj, down, 1),
                Waypoint(2.2, obj, down, 0),
                Waypoint(2.6, obj, down, 0),
            ]
            if meet is not None:
                plans[side] += [Waypoint(3.8, meet, down, 0), Waypoint(8.0, meet, down, 0)]
        # The right arm's targets are where the peg's centre must be relative to the socket's centre
        # (track_cube: relative to the socket as held), corrected by how the peg sits in the gripper.
        down = down_rotation("right")
        pre = np.array([SOCKET_HALF_LEN + PEG_HALF[0] + 0.02, 0.0, 0.0])
        home = np.array([PIN_X + 0.004 + PEG_HALF[0] - 0.003, 0.0, 0.0])  # peg tip 3 mm into the pin
        plans["right"] += [
            Waypoint(3.8, pre, down, 0, track_cube=True),
            Waypoint(4.6, pre, down, 0, track_cube=True),
            Waypoint(6.0, home, down, 0, track_cube=True),
            Waypoint(8.0, home, down, 0, track_cube=True),
        ]
        self.plans = plans
        self.q = {
            n: float(self.env.data.joint(n).qpos[0])
            for side in ("left", "right")
            for n in (f"{side}_{j}" for j in ARM_JOINTS)
        }
        self.k = 0

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        self.k += 1
        t = self.k / self.env.fps
        socket = self.env.body_position("socket")
        # The peg sits in the gripper a few mm and degrees off (it tilts as it is lifted, 3.5° seen: 6 mm
        # at its tip, more than the bore's clearance). Line up the peg, not the gripper: the gripper
        # orientation that makes the peg level, and the site offset that puts the peg's centre on target.
        ee = self.env.data.site("right_ee")
        ee_rot = ee.xmat.reshape(3, 3)
        peg_rot = self.env.data.body("peg").xmat.reshape(3, 3)
        level = peg_rot.T @ ee_rot
        offset = ee_rot.T @ (ee.xpos - self.env.body_position("peg"))
        aligning = t >= self.plans["right"][5].t
        action = []
        for side in ("left", "right"):
            anchor = socket + (level @ offset if aligning else ee_rot @ offset)
            pos, rot, grip = target_along(self.plans[side], t, anchor)
            if side == "right" and aligning:
                rot = level
            joints = [f"{side}_{j}" for j in ARM_JOINTS]
            solution, _ = solve_ik(self.env.model, f"{side}_ee", pos, joints, self.q, target_rot=rot, iterations=30)
            self.q.update(solution)
            action += [solution[j] for j in joints] + [grip]
        return np.asarray(action, dtype=np.float32)
