"""Omniwheel base kinematics and wheel odometry (LeKiwi's three wheels; any number of wheels works).

Body twist (vx, vy forward/left in m/s, wz counter-clockwise in rad/s — REP 103) to wheel angular
speeds: wheel i rolls along angle a_i, so its rim speed is cos(a_i)·vx + sin(a_i)·vy + R·wz and its
angular speed that over the wheel radius r (lerobot's LeKiwi matrix, in rad/s instead of deg/s).
The inverse is the matrix's (pseudo-)inverse. Odometry integrates the measured body twist over each
interval as a constant twist (the SE(2) exponential), so a steady arc is integrated exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from apprentice.robots.definition import BaseGeometry
from apprentice.robots.errors import RobotError


class OmniwheelKinematics:
    def __init__(self, geometry: BaseGeometry) -> None:
        self.geometry = geometry
        angles = np.radians(np.asarray(geometry.wheel_angles_deg, dtype=float))
        rim = np.column_stack([np.cos(angles), np.sin(angles), np.full(len(angles), geometry.base_radius)])
        self.matrix = rim / geometry.wheel_radius  # (wheels, 3): body twist -> wheel rad/s
        if np.linalg.matrix_rank(self.matrix) < 3:
            raise RobotError(f"base wheel angles {list(geometry.wheel_angles_deg)} cannot drive every direction")
        self.inverse = np.linalg.pinv(self.matrix)  # (3, wheels)

    def wheel_speeds(self, vx: float, vy: float, wz: float) -> np.ndarray:
        """Wheel angular speeds (rad/s) for a body twist; scaled down together, keeping the direction of
        motion, when one wheel would exceed `max_wheel_speed` (as lerobot's max_raw does)."""
        twist = np.array([vx, vy, wz], dtype=float)
        if not np.all(np.isfinite(twist)):
            raise RobotError(f"base twist must be finite, got {twist.tolist()}")
        speeds = self.matrix @ twist
        peak = float(np.max(np.abs(speeds)))
        if peak > self.geometry.max_wheel_speed:
            speeds *= self.geometry.max_wheel_speed / peak
        return speeds

    def body_twist(self, wheel_speeds: np.ndarray) -> tuple[float, float, float]:
        """(vx, vy, wz) of the base for measured wheel angular speeds (rad/s)."""
        vx, vy, wz = self.inverse @ np.asarray(wheel_speeds, dtype=float)
        return float(vx), float(vy), float(wz)


@dataclass
class Odometry:
    """Pose of the base in the odom frame, integrated from body twists."""

    x: float = 0.0
    y: float = 0.0
    theta: float = 0.0  # rad, wrapped to (-pi, pi]
    distance: float = 0.0  # m travelled (path length)

    def update(self, vx: float, vy: float, wz: float, dt: float) -> None:
        """Advance by a body twist held constant for `dt` seconds."""
        if dt <= 0:
            return
        dtheta = wz * dt
        # Body-frame displacement of a constant twist: straight line when not turning, else an arc.
        if abs(dtheta) < 1e-9:
            dx, dy = vx * dt, vy * dt
        else:
            s, c = math.sin(dtheta), 1.0 - math.cos(dtheta)
            dx = (vx * s - vy * c) / wz
            dy = (vx * c + vy * s) / wz
        cos_t, sin_t = math.cos(self.theta), math.sin(self.theta)
        self.x += cos_t * dx - sin_t * dy
        self.y += sin_t * dx + cos_t * dy
        self.theta = math.atan2(math.sin(self.theta + dtheta), math.cos(self.theta + dtheta))
        self.distance += math.hypot(dx, dy)

    def quaternion(self) -> tuple[float, float, float, float]:
        """(x, y, z, w) of the heading, for nav_msgs/Odometry and tf."""
        return 0.0, 0.0, math.sin(self.theta / 2), math.cos(self.theta / 2)
