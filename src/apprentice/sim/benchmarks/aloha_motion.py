"""End-effector motion for the ALOHA experts: tool-point IK on gym-aloha's ViperX model, and key-pose schedules.

A plan is a list of `Key`s per arm (a tool pose and a gripper opening reached at a control step);
between keys the tool moves on a minimum-jerk profile (position linear, rotation slerp). A key's pose can
be a function of the live simulator state (re-read every step until the key is reached), which is how the
experts follow an object that is held by the other arm. Each step's tool pose becomes six joint targets by
damped least squares warm-started from the previous solution: the plan is in end-effector space, what the
env receives are joint positions, as in the ACT paper's scripted data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from apprentice.sim.base import SimError
from apprentice.sim.ik import min_jerk

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
# The tool point: between the finger pads' outer halves, in the gripper_link frame (x is the approach axis,
# fingers slide along y). The fingers span x 0.064..0.154 and z ±0.03 of that frame.
TOOL_OFFSET = np.array([0.12, 0.0, 0.0])
FINGER_REACH = 0.034  # fingertips beyond the tool point, along the approach axis
FINGER_HALF_WIDTH = 0.03  # the pads' half width along the gripper's z axis

Pose = tuple[np.ndarray, np.ndarray]  # (position (3,), rotation matrix (3, 3)) in the world frame


def gripper_frame(approach: np.ndarray, fingers: np.ndarray) -> np.ndarray:
    """Rotation whose x axis is `approach` and y axis (the fingers' closing line) is `fingers`, made orthogonal."""
    x = np.asarray(approach, dtype=np.float64)
    x = x / np.linalg.norm(x)
    y = np.asarray(fingers, dtype=np.float64)
    y = y - x * float(x @ y)
    y = y / np.linalg.norm(y)
    return np.column_stack([x, y, np.cross(x, y)])


def grasp_height(rot: np.ndarray, clearance: float = 0.006) -> float:
    """Tool height above the table at which the lowest fingertip corner of a tool at `rot` clears it."""
    lowest = FINGER_REACH * rot[2, 0] - FINGER_HALF_WIDTH * abs(rot[2, 2])
    return clearance - lowest


def _quat(rot: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(rot).reshape(-1))
    return q


def _mat(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q)
    return m.reshape(3, 3)


def interpolate(a: Pose, b: Pose, alpha: float) -> Pose:
    """The pose `alpha` (0..1) of the way from a to b: position linear, rotation along the shorter arc."""
    qa, qb = _quat(a[1]), _quat(b[1])
    dot = float(qa @ qb)
    if dot < 0:
        qb, dot = -qb, -dot
    if dot > 0.9995:
        q = qa + alpha * (qb - qa)
    else:
        theta = np.arccos(dot)
        q = (np.sin((1 - alpha) * theta) * qa + np.sin(alpha * theta) * qb) / np.sin(theta)
    return a[0] + alpha * (b[0] - a[0]), _mat(q / np.linalg.norm(q))


class ArmIK:
    """Joint targets that put one arm's tool point at a pose, on a kinematic copy of the env's model."""

    def __init__(self, model: mujoco.MjModel, side: str) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        prefix = f"vx300s_{side}/"
        joints = [model.joint(prefix + j) for j in ARM_JOINTS]
        self.qadr = np.array([j.qposadr[0] for j in joints])
        self.dadr = np.array([j.dofadr[0] for j in joints])
        self.low = np.array([j.range[0] for j in joints])
        self.high = np.array([j.range[1] for j in joints])
        self.body = model.body(prefix + "gripper_link").id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def tool_pose(self, data: mujoco.MjData) -> Pose:
        """Where the tool point is in `data` (the env's live data, or this solver's own)."""
        rot = data.xmat[self.body].reshape(3, 3).copy()
        return data.xpos[self.body] + rot @ TOOL_OFFSET, rot

    def solve(self, q: np.ndarray, target: Pose, iterations: int = 30, damping: float = 1e-4) -> np.ndarray:
        """Six joint positions near `q` whose tool pose is `target` (least-squares best within joint limits).

        The forearm roll is held softly at 0: where the gripper's axis lines up with the forearm's (wrist
        angle 0) roll and wrist rotate do the same thing, and a bare solver would swing them by up to π
        between two steps. And no joint moves more than `MAX_STEP` per call.
        """
        data = self.data
        q0 = np.asarray(q, dtype=np.float64)
        q = q0.copy()
        pos, rot = target
        for _ in range(iterations):
            data.qpos[self.qadr] = q
            mujoco.mj_kinematics(self.model, data)
            tool, current = self.tool_pose(data)
            err_p = pos - tool
            # small-angle rotation error in world coordinates
            err_r = 0.5 * sum(np.cross(current[:, i], rot[:, i]) for i in range(3))
            if np.linalg.norm(err_p) < 1e-4 and np.linalg.norm(err_r) < 1e-3:
                break
            mujoco.mj_comPos(self.model, data)
            mujoco.mj_jac(self.model, data, self._jacp, self._jacr, tool, self.body)
            # A rotation error of 1 rad weighs like 0.1 m: the grasp point matters more than the last degree.
            jac = np.vstack([self._jacp[:, self.dadr], 0.1 * self._jacr[:, self.dadr], ROLL_WEIGHT * ROLL_ROW])
            res = np.concatenate([err_p, 0.1 * err_r, [-ROLL_WEIGHT * q[3]]])
            dq = np.linalg.solve(jac.T @ jac + damping * np.eye(6), jac.T @ res)
            q = np.clip(q + np.clip(dq, -0.3, 0.3), self.low, self.high)
        return np.clip(q, q0 - MAX_STEP, q0 + MAX_STEP)


ROLL_ROW = np.eye(6)[3]  # forearm_roll
ROLL_WEIGHT = 0.01  # metres of tool error one radian of forearm roll is worth
MAX_STEP = 0.08  # rad per control step (4 rad/s at 50 fps)


PoseSource = Pose | Callable[[], Pose]


@dataclass
class Key:
    step: int  # control step at which the tool reaches this key
    pose: PoseSource | None  # a fixed pose, a function of the live simulator state, or None: the previous key's
    grip: float  # normalized gripper command (1 open, 0 closed)


class ArmPlan:
    """A schedule of keys for one arm, sampled once per control step into (tool pose, gripper command)."""

    def __init__(self, keys: list[Key]) -> None:
        if any(b.step <= a.step for a, b in itertools.pairwise(keys)):
            raise SimError(f"plan keys must have increasing steps, got {[k.step for k in keys]}")
        self.keys = keys
        self._frozen: dict[int, Pose] = {}  # keys already reached keep the pose they had then

    def _resolve(self, i: int, step: int) -> Pose:
        if i in self._frozen:
            return self._frozen[i]
        key = self.keys[i]
        if key.pose is None:
            return self._resolve(i - 1, step)
        pose = key.pose() if callable(key.pose) else key.pose
        pose = (np.asarray(pose[0], dtype=np.float64), np.asarray(pose[1], dtype=np.float64))
        if step >= key.step:
            self._frozen[i] = pose
        return pose

    def sample(self, step: int) -> tuple[Pose, float]:
        keys = self.keys
        if step >= keys[-1].step:
            return self._resolve(len(keys) - 1, step), keys[-1].grip
        i = max(j for j, k in enumerate(keys) if k.step <= step)
        a, b = keys[i], keys[i + 1]
        alpha = min_jerk((step - a.step) / (b.step - a.step))
        start, end = self._resolve(i, step), self._resolve(i + 1, step)
        return interpolate(start, end, alpha), a.grip + (b.grip - a.grip) * (step - a.step) / (b.step - a.step)
