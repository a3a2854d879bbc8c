"""`pusht`: push a T-shaped block onto a goal pose with a round pusher (pymunk), as LeRobot's PushT-v0.

Units and semantics follow gym-pusht: a 512x512 workspace in pixels, the action is the pusher's target
position, a PD loop moves the kinematic pusher at 100 Hz under a 10 fps policy, reward = coverage of the
goal by the block / 0.95 (clipped), success = coverage > 95%. observation.state = pusher xy;
observation.environment_state = block x, y, angle (the privileged pose the expert uses).
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import gymnasium as gym
import numpy as np
import pymunk
import shapely.geometry as sg

from apprentice.sim.base import SimError, dataset_features

WORKSPACE = 512.0
GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])
PUSHER_RADIUS = 15.0
SUCCESS_COVERAGE = 0.95
# The T in its body frame: a 120x30 bar on top of a 30x90 stem; origin at the shape's centroid.
_BAR = [(-60.0, 0.0), (60.0, 0.0), (60.0, 30.0), (-60.0, 30.0)]
_STEM = [(-15.0, 30.0), (15.0, 30.0), (15.0, 120.0), (-15.0, 120.0)]
_CENTROID = np.array([0.0, (120 * 30 * 15 + 30 * 90 * 75) / (120 * 30 + 30 * 90)])
T_PARTS = [np.array(p) - _CENTROID for p in (_BAR, _STEM)]


def t_polygon(pose: np.ndarray) -> sg.base.BaseGeometry:
    """The T's outline (shapely) at pose (x, y, angle) in workspace pixels."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    return sg.Polygon(T_PARTS[0] @ rot.T + pose[:2]).union(sg.Polygon(T_PARTS[1] @ rot.T + pose[:2]))


class PushTEnv(gym.Env):
    """Gymnasium env; same attributes as the MuJoCo tasks (fps, features, joint_names, task, camera)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}
    fps = 10
    sim_hz = 100
    task = "Push the T-shaped block onto the T-shaped target."
    robot_type = "pusht"
    joint_names: ClassVar[list[str]] = ["x", "y"]
    environment_state_names: ClassVar[list[str]] = ["block_x", "block_y", "block_angle"]
    camera = "top"
    max_episode_steps = 300
    frames_after_success: int | None = 5  # recorded after the first success: the settle at the goal

    def __init__(
        self,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 96,
        image_width: int = 96,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
    ) -> None:
        self.render_images = render
        self.image_height, self.image_width = image_height, image_width
        self.terminate_on_success = terminate_on_success
        if max_episode_steps is not None:
            self.max_episode_steps = max_episode_steps
        self._seed, self._seeded, self._elapsed = seed, False, 0
        self.render_mode = "rgb_array"
        self.action_space = gym.spaces.Box(0.0, WORKSPACE, (2,), np.float32)
        spaces: dict[str, gym.Space] = {
            "observation.state": gym.spaces.Box(0.0, WORKSPACE, (2,), np.float32),
            "observation.environment_state": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        }
        if render:
            spaces["observation.images.top"] = gym.spaces.Box(0, 255, (image_height, image_width, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._goal_area = t_polygon(GOAL_POSE).area
        self._build_space()

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return dataset_features(self)

    def _build_space(self) -> None:
        self.space = pymunk.Space()
        self.space.gravity = (0.0, 0.0)
        self.space.damping = 0.0  # no momentum carried between pushes: the block rests on a table
        walls = [((5, 5), (5, 507)), ((5, 507), (507, 507)), ((507, 507), (507, 5)), ((507, 5), (5, 5))]
        for a, b in walls:
            self.space.add(pymunk.Segment(self.space.static_body, a, b, 2.0))
        self.pusher = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        pusher_shape = pymunk.Circle(self.pusher, PUSHER_RADIUS)
        pusher_shape.friction = 1.0
        self.block = pymunk.Body()
        shapes = [pymunk.Poly(self.block, [tuple(v) for v in part]) for part in T_PARTS]
        for shape in shapes:
            # Mass by area, so the centre of gravity is the T's centroid (the body origin of T_PARTS).
            shape.density = 1.0 / 6300.0
            shape.friction = 1.0
        self.space.add(self.pusher, pusher_shape, self.block, *shapes)

    # ---------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is None and not self._seeded:
            seed = self._seed
        super().reset(seed=seed)
        self._seeded = True
        rng = self.np_random
        self.pusher.position = tuple(rng.uniform(50, 450, size=2))
        self.pusher.velocity = (0.0, 0.0)
        # The block starts anywhere it does not already cover most of the goal (as gym-pusht's sampling).
        while True:
            pose = np.array([*rng.uniform(100, 400, size=2), rng.uniform(-np.pi, np.pi)])
            if self._coverage(pose) < 0.5 and not t_polygon(pose).buffer(PUSHER_RADIUS).contains(
                sg.Point(self.pusher.position)
            ):
                break
        self.block.position = tuple(pose[:2])
        self.block.angle = float(pose[2])
        self.block.velocity, self.block.angular_velocity = (0.0, 0.0), 0.0
        self.space.reindex_shapes_for_body(self.block)
        self._elapsed = 0
        return self._observation(), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise SimError(f"pusht: action must be 2 finite numbers (pusher x, y in pixels), got {action}")
        target = np.clip(action, 0.0, WORKSPACE)
        dt = 1.0 / self.sim_hz
        for _ in range(self.sim_hz // self.fps):
            # gym-pusht's PD loop on the kinematic pusher: kp 100, kv 20.
            pos, vel = np.array(self.pusher.position), np.array(self.pusher.velocity)
            self.pusher.velocity = tuple(vel + (100.0 * (target - pos) - 20.0 * vel) * dt)
            self.space.step(dt)
            # A table's friction: the block keeps no speed of its own between physics steps.
            self.block.velocity, self.block.angular_velocity = (0.0, 0.0), 0.0
        self._elapsed += 1
        coverage = self._coverage(self.block_pose)
        success = coverage > SUCCESS_COVERAGE
        reward = float(np.clip(coverage / SUCCESS_COVERAGE, 0.0, 1.0))
        terminated = bool(success and self.terminate_on_success)
        truncated = self._elapsed >= self.max_episode_steps
        return self._observation(), reward, terminated, truncated, {"is_success": success, "coverage": coverage}

    def render(self) -> np.ndarray:
        """Top view: goal outline in green, block in slate grey, pusher in blue (gym-pusht's colours)."""
        scale = 4
        size = (self.image_height * scale, self.image_width * scale)
        image = np.full((*size, 3), 255, dtype=np.uint8)
        sx, sy = size[1] / WORKSPACE, size[0] / WORKSPACE

        def pixels(poly: sg.Polygon) -> np.ndarray:
            xy = np.array(poly.exterior.coords)
            return np.round(np.column_stack([xy[:, 0] * sx, xy[:, 1] * sy])).astype(np.int32)

        for part in _pose_parts(GOAL_POSE):
            cv2.fillPoly(image, [pixels(part)], (144, 238, 144))
        for part in _pose_parts(self.block_pose):
            cv2.fillPoly(image, [pixels(part)], (119, 136, 153))
        center = (round(self.pusher.position[0] * sx), round(self.pusher.position[1] * sy))
        cv2.circle(image, center, round(PUSHER_RADIUS * sx), (65, 105, 225), -1)
        # Drawn 4x larger and area-averaged down: anti-aliased edges at 96x96 for a few 100 µs.
        return cv2.resize(image, (self.image_width, self.image_height), interpolation=cv2.INTER_AREA)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------------------ internals
    @property
    def block_pose(self) -> np.ndarray:
        return np.array([self.block.position[0], self.block.position[1], self.block.angle])

    def _coverage(self, pose: np.ndarray) -> float:
        return t_polygon(pose).intersection(t_polygon(GOAL_POSE)).area / self._goal_area

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {
            "observation.state": np.array(self.pusher.position, dtype=np.float32),
            "observation.environment_state": self.block_pose.astype(np.float32),
        }
        if self.render_images:
            obs["observation.images.top"] = self.render()
        return obs


def _pose_parts(pose: np.ndarray) -> list[sg.Polygon]:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    return [sg.Polygon(part @ rot.T + pose[:2]) for part in T_PARTS]
