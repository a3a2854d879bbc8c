"""Joint-trajectory playback (joint_trajectory_controller semantics, linear between points)."""

from __future__ import annotations

import numpy as np

from apprentice.robots.errors import RobotError


class TrajectoryPlayer:
    """Positions over time from waypoints; starts from the arm's position when the trajectory arrives."""

    def __init__(self, start_time: float, start: np.ndarray, times: list[float], points: np.ndarray) -> None:
        times_arr = np.asarray(times, dtype=float)
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[0] != len(times_arr) or points.shape[1] != len(start):
            raise RobotError(f"trajectory needs one {len(start)}-joint point per time, got {points.shape}")
        if len(times_arr) == 0 or np.any(np.diff(times_arr) <= 0) or times_arr[0] < 0:
            raise RobotError(f"trajectory time_from_start must be >= 0 and strictly increasing, got {times}")
        if times_arr[0] > 0:  # the segment to the first point starts where the arm is now
            times_arr = np.concatenate([[0.0], times_arr])
            points = np.vstack([start, points])
        self.start_time = start_time
        self.times = times_arr
        self.points = points

    @property
    def end_time(self) -> float:
        return self.start_time + float(self.times[-1])

    def sample(self, now: float) -> np.ndarray:
        t = now - self.start_time
        return np.array([np.interp(t, self.times, self.points[:, j]) for j in range(self.points.shape[1])])

    def finished(self, now: float) -> bool:
        return now >= self.end_time
