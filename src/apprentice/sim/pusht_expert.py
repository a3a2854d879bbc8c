"""A greedy pushing controller for PushT: pick the contact whose push best reduces the pose error, go
around the block to it, push a short stroke, repeat with shorter strokes as the block nears the goal."""

from __future__ import annotations

import itertools

import numpy as np
import shapely.geometry as sg

from apprentice.sim.pusht import GOAL_POSE, PUSHER_RADIUS, PushTEnv, t_polygon

GYRATION = 40.0  # px: radius of gyration of the T, turns an angle error into a comparable length
CLEARANCE = PUSHER_RADIUS + 6.0
TRAVEL_STEP = 50.0  # px the pusher target moves per 10 fps step on the way to a contact
PUSH_STEP = 8.0  # ... and while pushing: faster strokes shove the block past its goal (20 px: 93 %,
# 8 px: 100 % over seeds 0-99, benchmarks/sim_expert_success.py)


def _boundary(spacing: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Points on the T's outline (body frame) and their outward normals."""
    outline = np.array(t_polygon(np.zeros(3)).exterior.coords)
    points, normals = [], []
    for a, b in itertools.pairwise(outline):
        edge = b - a
        length = float(np.linalg.norm(edge))
        n = np.array([edge[1], -edge[0]]) / length
        if t_polygon(np.zeros(3)).contains(_point(a + edge / 2 + 2 * n)):
            n = -n
        for s in np.arange(spacing / 2, length, spacing):
            points.append(a + edge * s / length)
            normals.append(n)
    return np.array(points), np.array(normals)


def _point(xy: np.ndarray) -> sg.Point:
    return sg.Point(float(xy[0]), float(xy[1]))


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


class PushTExpert:
    def __init__(self, env: PushTEnv) -> None:
        self.env = env
        self.points, self.normals = _boundary()
        self.path: list[np.ndarray] = []
        self.target = np.zeros(2)

    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        self.path = []
        self.target = np.array(self.env.pusher.position)

    def _errors(self, pose: np.ndarray) -> tuple[np.ndarray, float]:
        e_ang = (GOAL_POSE[2] - pose[2] + np.pi) % (2 * np.pi) - np.pi
        return GOAL_POSE[:2] - pose[:2], float(e_ang)

    def _plan(self, pose: np.ndarray, pusher: np.ndarray) -> list[np.ndarray]:
        e_pos, e_ang = self._errors(pose)
        rot = _rotation(pose[2])
        contacts = self.points @ rot.T + pose[:2]
        pushes = -(self.normals @ rot.T)  # pushing into the block, against the outward normal
        r = contacts - pose[:2]
        turn = (r[:, 0] * pushes[:, 1] - r[:, 1] * pushes[:, 0]) / GYRATION
        # Score = how much a unit push moves the block's pose toward the goal (quasi-static pushing: the
        # block translates along the push and turns by the push's moment over its radius of gyration).
        # Translating first and turning later was tried: it succeeded about half as often as this joint score.
        error = np.concatenate([e_pos, [GYRATION * e_ang]])
        motion = np.column_stack([pushes, turn])
        score = motion @ error / np.linalg.norm(motion, axis=1)
        # Among nearly-as-good contacts prefer one reachable in a straight line (no trip around the block).
        blocked = np.array([self._blocked(pusher, a, pose) for a in contacts - pushes * CLEARANCE])
        score = score - 0.6 * blocked
        approach = contacts - pushes * CLEARANCE
        inside = (approach < CLEARANCE).any(axis=1) | (approach > 512 - CLEARANCE).any(axis=1)
        score[inside] = -np.inf
        best = int(np.argmax(score))
        # Stroke length shrinks with the error so the last pushes are fine adjustments.
        stroke = float(np.clip(np.linalg.norm(error), 4.0, 80.0))
        start = approach[best]
        path = self._detour(pusher, start, pose)
        path.append(start)
        path.append(contacts[best] + pushes[best] * (stroke - (CLEARANCE - PUSHER_RADIUS)))
        return path

    def _blocked(self, pusher: np.ndarray, goal: np.ndarray, pose: np.ndarray) -> bool:
        return bool(t_polygon(pose).buffer(PUSHER_RADIUS - 3).intersects(sg.LineString([pusher, goal])))

    def _detour(self, pusher: np.ndarray, goal: np.ndarray, pose: np.ndarray) -> list[np.ndarray]:
        """Waypoints from the pusher to `goal` that stay clear of the block (around it on a circle)."""
        # (slightly thinner than the pusher: a pusher resting against the block may slide along it)
        block = t_polygon(pose).buffer(PUSHER_RADIUS - 3)
        if not block.intersects(sg.LineString([pusher, goal])):
            return []
        center = pose[:2]
        radius = 80.0 + CLEARANCE  # the T's farthest point is 75 px from its centroid
        a0 = np.arctan2(*(pusher - center)[::-1])
        a1 = np.arctan2(*(goal - center)[::-1])
        delta = (a1 - a0 + np.pi) % (2 * np.pi) - np.pi
        arc = [center + radius * np.array([np.cos(a), np.sin(a)]) for a in np.linspace(a0, a0 + delta, 6)]
        return [np.clip(p, CLEARANCE, 512 - CLEARANCE) for p in arc]

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        pose = self.env.block_pose
        pusher = np.array(self.env.pusher.position)
        if not self.path:
            self.path = self._plan(pose, pusher)
        goal = self.path[0]
        step = goal - self.target
        dist = float(np.linalg.norm(step))
        limit = PUSH_STEP if len(self.path) == 1 else TRAVEL_STEP
        if dist <= limit:
            self.target = goal
            self.path.pop(0)
        else:
            self.target = self.target + step / dist * limit
        return self.target.astype(np.float32)
