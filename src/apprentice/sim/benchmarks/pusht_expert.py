"""A greedy pushing expert for gym-pusht: pick the contact on the T whose push best reduces the pose error,
go around the block to it, push a stroke, back off, repeat with shorter strokes as the block nears the goal.

It reads gym-pusht's privileged state (the pymunk block and pusher). In gym-pusht the pusher-block contact is
frictionless (only the bodies carry a `friction` value, not the shapes) and the space's damping of 0 wipes
every velocity each 10 ms physics step, so a push at contact point x with inward normal n moves the block's
centre of gravity along n and turns it by ((x - cog) x n) / I per unit impulse: the linear model that ranks
contacts. Near the goal that model overshoots (the last strokes knocked a nearly-placed block off: 99/100
with it alone), so there the best few contacts and stroke lengths are pushed in a pymunk replica of the
block first and the one ending nearest the goal is taken.
"""

from __future__ import annotations

import itertools

import numpy as np
import pymunk
import shapely.geometry as sg

from apprentice.sim.benchmarks.pusht import PushTEnv

PUSHER_RADIUS = 15.0  # gym-pusht's agent circle
CLEARANCE = PUSHER_RADIUS + 6.0
TRAVEL_STEP = 50.0  # px the pusher target moves per 10 fps step on the way to a contact
PUSH_STEP = 8.0  # ... and while pushing near the goal
FAR_PUSH_STEP = 16.0  # ... and far from it, where a stroke's exact end matters less than the 300-step limit
CANDIDATES = 8  # best-scored contacts whose pushes are tried in a model of the block before one is chosen
STROKE_SCALES = (0.5, 1.0, 2.0)
NEAR_GOAL = 80.0  # pose error (px) under which strokes are chosen in the replica; far away the score leads


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _point(xy: np.ndarray) -> sg.Point:
    return sg.Point(float(xy[0]), float(xy[1]))


class PushTExpert:
    """`reset(obs)` at each episode start (after the env's reset), then `act(obs)` every step."""

    def __init__(self, env: PushTEnv, spacing: float = 6.0) -> None:
        self.env = env
        self.spacing = spacing
        self.path: list[np.ndarray] = []
        self.target = np.zeros(2)
        self.push_step = PUSH_STEP

    # ------------------------------------------------------------------------------ geometry
    def _geometry(self) -> None:
        """The T (body frame) as gym-pusht built it this episode: outline points, normals, cog, inertia."""
        block = self.env.pusht.block
        parts = [sg.Polygon([tuple(v) for v in shape.get_vertices()]) for shape in block.shapes]
        self.body_t = parts[0].union(parts[1])
        outline = np.array(self.body_t.exterior.coords)
        points, normals = [], []
        for a, b in itertools.pairwise(outline):
            edge = b - a
            length = float(np.linalg.norm(edge))
            n = np.array([edge[1], -edge[0]]) / length
            if self.body_t.contains(_point(a + edge / 2 + 2 * n)):
                n = -n
            for s in np.arange(self.spacing / 2, length, self.spacing):
                points.append(a + edge * s / length)
                normals.append(n)
        self.points, self.normals = np.array(points), np.array(normals)
        self.cog = np.array(block.center_of_gravity)
        self.gyration = float(np.sqrt(block.moment / block.mass))  # turns an angle into a comparable length
        self.reach = float(np.max(np.linalg.norm(outline - self.cog, axis=1)))
        goal = np.asarray(self.env.pusht.goal_pose, dtype=np.float64)
        self.goal_cog = goal[:2] + _rotation(goal[2]) @ self.cog
        self.goal_angle = float(goal[2])

    def _pose(self) -> tuple[np.ndarray, float]:
        """Block origin (x, y) and angle, as gym-pusht's shapes are placed."""
        block = self.env.pusht.block
        return np.array(block.position), float(block.angle)

    def _world_t(self, origin: np.ndarray, angle: float) -> sg.Polygon:
        rot = _rotation(angle)
        return sg.Polygon(np.array(self.body_t.exterior.coords) @ rot.T + origin)

    # ------------------------------------------------------------------------------ policy
    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        self._geometry()
        self.path = []
        self.target = np.array(self.env.pusht.agent.position)

    def _plan(self, origin: np.ndarray, angle: float, pusher: np.ndarray) -> list[np.ndarray]:
        rot = _rotation(angle)
        cog = origin + rot @ self.cog
        e_pos = self.goal_cog - cog
        e_ang = (self.goal_angle - angle + np.pi) % (2 * np.pi) - np.pi
        contacts = self.points @ rot.T + origin
        pushes = -(self.normals @ rot.T)  # into the block, against the outward normal
        r = contacts - cog
        turn = (r[:, 0] * pushes[:, 1] - r[:, 1] * pushes[:, 0]) / self.gyration
        # Score = how far a unit push moves the pose toward the goal (angle error scaled by the gyration radius).
        error = np.concatenate([e_pos, [self.gyration * e_ang]])
        motion = np.column_stack([pushes, turn])
        score = motion @ error / np.linalg.norm(motion, axis=1)
        approach = contacts - pushes * CLEARANCE
        t_world = self._world_t(origin, angle)
        # Among nearly-as-good contacts prefer one reachable in a straight line (no trip around the block).
        blocked = np.array([self._blocked(pusher, a, t_world) for a in approach])
        score = score - 0.6 * blocked
        outside = (approach < 5 + CLEARANCE).any(axis=1) | (approach > 506 - CLEARANCE).any(axis=1)
        score[outside] = -np.inf
        stroke = float(np.clip(np.linalg.norm(error), 4.0, 80.0))  # fine adjustments near the goal
        # The heuristic ranks contacts; a replica of the block picks among the best few and the stroke
        # length (pushes that overshoot or twist the block away show up there, not in the linear model).
        best, best_stroke, best_cost = -1, stroke, np.inf
        near = np.linalg.norm(error) < NEAR_GOAL
        self.push_step = PUSH_STEP if near else FAR_PUSH_STEP
        for i in np.argsort(-score)[: CANDIDATES if near else 0]:
            if not np.isfinite(score[i]):
                break
            for scale in STROKE_SCALES:
                length = float(np.clip(stroke * scale, 4.0, 120.0))
                cost = self._rollout(origin, angle, approach[i], pushes[i], contacts[i], length)
                if cost < best_cost:
                    best, best_stroke, best_cost = int(i), length, cost
        if best < 0:
            best = int(np.argmax(score))
        start = approach[best]
        path = self._detour(pusher, start, cog, t_world)
        end = contacts[best] + pushes[best] * (best_stroke - (CLEARANCE - PUSHER_RADIUS))
        # Back off along the stroke before the next trip: a pusher dragged along the block knocks it off.
        return [*path, start, end, end - pushes[best] * CLEARANCE]

    def _stroke_targets(self, start: np.ndarray, end: np.ndarray) -> list[np.ndarray]:
        """The pusher targets `act` commands from `start` to `end`: PUSH_STEP px per step."""
        steps = max(1, int(np.ceil(np.linalg.norm(end - start) / PUSH_STEP)))
        return [start + (end - start) * k / steps for k in range(1, steps + 1)]

    def _rollout(
        self, origin: np.ndarray, angle: float, start: np.ndarray, push: np.ndarray, contact: np.ndarray,
        length: float,
    ) -> float:
        """Pose error after pushing a replica of the block (gym-pusht's bodies and PD loop) from `start`."""
        space, block, agent = self._replica(origin, angle, start)
        end = contact + push * (length - (CLEARANCE - PUSHER_RADIUS))
        env = self.env.pusht
        for target in [*self._stroke_targets(start, end), end, end - push * CLEARANCE]:
            for _ in range(round(1 / (env.dt * env.control_hz))):
                accel = env.k_p * (target - np.array(agent.position)) - env.k_v * np.array(agent.velocity)
                agent.velocity = tuple(np.array(agent.velocity) + accel * env.dt)
                space.step(env.dt)
        return self._cost(np.array(block.position), float(block.angle))

    def _replica(
        self, origin: np.ndarray, angle: float, pusher: np.ndarray
    ) -> tuple[pymunk.Space, pymunk.Body, pymunk.Body]:
        real = self.env.pusht
        space = pymunk.Space()
        space.gravity, space.damping = (0, 0), real.space.damping
        block = pymunk.Body(real.block.mass, real.block.moment)
        shapes = [pymunk.Poly(block, shape.get_vertices()) for shape in real.block.shapes]
        block.center_of_gravity = real.block.center_of_gravity
        block.angle, block.position = angle, tuple(origin)
        agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        agent.position = tuple(pusher)
        space.add(block, *shapes, agent, pymunk.Circle(agent, PUSHER_RADIUS))
        return space, block, agent

    def _cost(self, origin: np.ndarray, angle: float) -> float:
        cog = origin + _rotation(angle) @ self.cog
        e_ang = (self.goal_angle - angle + np.pi) % (2 * np.pi) - np.pi
        return float(np.hypot(np.linalg.norm(self.goal_cog - cog), self.gyration * e_ang))

    def _blocked(self, pusher: np.ndarray, goal: np.ndarray, t_world: sg.Polygon) -> bool:
        return bool(t_world.buffer(PUSHER_RADIUS - 3).intersects(sg.LineString([pusher, goal])))

    def _detour(self, pusher: np.ndarray, goal: np.ndarray, cog: np.ndarray, t_world: sg.Polygon) -> list[np.ndarray]:
        """Waypoints from the pusher to `goal` that stay clear of the block (around it on a circle)."""
        if not self._blocked(pusher, goal, t_world):
            return []
        radius = self.reach + 4 + CLEARANCE
        a0 = np.arctan2(*(pusher - cog)[::-1])
        a1 = np.arctan2(*(goal - cog)[::-1])
        delta = (a1 - a0 + np.pi) % (2 * np.pi) - np.pi
        arc = [cog + radius * np.array([np.cos(a), np.sin(a)]) for a in np.linspace(a0, a0 + delta, 6)]
        return [np.clip(p, 5 + CLEARANCE, 506 - CLEARANCE) for p in arc]

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        origin, angle = self._pose()
        pusher = np.array(self.env.pusht.agent.position)
        if not self.path:
            self.path = self._plan(origin, angle, pusher)
        goal = self.path[0]
        step = goal - self.target
        dist = float(np.linalg.norm(step))
        limit = self.push_step if len(self.path) == 2 else TRAVEL_STEP
        if dist <= limit:
            self.target = goal
            self.path.pop(0)
        else:
            self.target = self.target + step / dist * limit
        return self.target.astype(np.float32)
