"""The transfer-cube expert's plan: end-effector waypoints per arm, interpolated, solved by IK each step."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from apprentice.sim.aloha import ARM_JOINTS, READY_EE, AlohaTransferCubeEnv, down_rotation
from apprentice.sim.ik import solve_ik

MEET = np.array([0.0, 0.0, 0.20])  # where the right arm holds the cube for the hand-over
# Left gripper at the hand-over: approaching along +x, fingers closing along z (top and bottom faces),
# so they never meet the right gripper's fingers, which hold the cube's y faces.
SIDE_ROTATION = np.column_stack([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass
class Waypoint:
    t: float  # seconds from episode start
    pos: np.ndarray
    rot: np.ndarray
    gripper: float  # 1 open, 0 closed
    track_cube: bool = False  # pos is relative to the cube's live position (hand-over approach)


def _quat(rot: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, rot.reshape(-1))
    return q


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - a) * theta) * q0 + np.sin(a * theta) * q1) / np.sin(theta)


def _rot(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q)
    return m.reshape(3, 3)


def target_along(plan: list[Waypoint], t: float, anchor: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(position, rotation, gripper) at time t, linear between waypoints (slerp for rotation); waypoints
    with track_cube are relative to `anchor`."""
    i = max(j for j, w in enumerate(plan) if w.t <= t) if t < plan[-1].t else len(plan) - 2
    a, b = plan[i], plan[min(i + 1, len(plan) - 1)]
    alpha = 1.0 if b.t == a.t else min(max((t - a.t) / (b.t - a.t), 0.0), 1.0)
    pa = a.pos + (anchor if a.track_cube else 0)
    pb = b.pos + (anchor if b.track_cube else 0)
    rot = _rot(_slerp(_quat(a.rot), _quat(b.rot), alpha))
    return pa + alpha * (pb - pa), rot, a.gripper + alpha * (b.gripper - a.gripper)


class TransferCubePlanner:
    def __init__(self, env: AlohaTransferCubeEnv) -> None:
        self.env = env
        self.model = env.model
        self.fps = env.fps
        self.plans: dict[str, list[Waypoint]] = {}
        self.q: dict[str, float] = {}
        self.k = 0
        self.handover_cube: np.ndarray | None = None

    def reset(self, cube: np.ndarray) -> None:
        c = np.asarray(cube, dtype=np.float64)
        down_r, down_l = down_rotation("right"), down_rotation("left")
        above = c + np.array([0.0, 0.0, 0.10])
        self.plans = {
            "right": [
                Waypoint(0.0, READY_EE["right"], down_r, 1),
                Waypoint(1.0, above, down_r, 1),
                Waypoint(1.8, c, down_r, 1),
                Waypoint(2.2, c, down_r, 0),
                Waypoint(2.6, c, down_r, 0),
                Waypoint(3.8, MEET, down_r, 0),
                Waypoint(5.4, MEET, down_r, 0),
                Waypoint(5.8, MEET, down_r, 1),
                Waypoint(6.4, MEET + np.array([0.0, 0.0, 0.10]), down_r, 1),
                Waypoint(8.0, MEET + np.array([0.0, 0.0, 0.10]), down_r, 1),
            ],
            "left": [
                Waypoint(0.0, READY_EE["left"], down_l, 1),
                Waypoint(3.0, READY_EE["left"], down_l, 1),
                Waypoint(3.8, np.array([-0.14, 0, 0]), SIDE_ROTATION, 1, track_cube=True),
                Waypoint(4.6, np.zeros(3), SIDE_ROTATION, 1, track_cube=True),
                Waypoint(5.0, np.zeros(3), SIDE_ROTATION, 0, track_cube=True),
                Waypoint(5.8, np.zeros(3), SIDE_ROTATION, 0, track_cube=True),
                Waypoint(6.6, np.array([-0.10, 0, 0.02]), SIDE_ROTATION, 0, track_cube=True),
                Waypoint(8.0, np.array([-0.10, 0, 0.02]), SIDE_ROTATION, 0, track_cube=True),
            ],
        }
        self.q = {
            n: float(self.env.data.joint(n).qpos[0])
            for side in ("left", "right")
            for n in (f"{side}_{j}" for j in ARM_JOINTS)
        }
        self.k = 0
        self.handover_cube = None

    def _target(self, side: str, t: float, cube: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        # The hand-over follows the cube where the right gripper really holds it, until the left closes.
        if t < 4.6 or self.handover_cube is None:
            self.handover_cube = np.asarray(cube, dtype=np.float64).copy()
        return target_along(self.plans[side], t, self.handover_cube)

    def step(self, cube: np.ndarray) -> np.ndarray:
        self.k += 1
        t = self.k / self.fps
        action = []
        for side in ("left", "right"):
            pos, rot, grip = self._target(side, t, cube)
            joints = [f"{side}_{j}" for j in ARM_JOINTS]
            solution, _ = solve_ik(self.model, f"{side}_ee", pos, joints, self.q, target_rot=rot, iterations=30)
            self.q.update(solution)
            action += [solution[j] for j in joints] + [grip]
        return np.asarray(action, dtype=np.float32)
