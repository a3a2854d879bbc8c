"""Joint-trajectory following as joint_trajectory_controller does it: linear in time between points."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from apprentice.sim.base import SimError


class TrajectoryFollower:
    """Holds one trajectory (replaced by the next) and samples position targets at a time."""

    def __init__(self, joint_names: Sequence[str]) -> None:
        self.joint_names = list(joint_names)
        self._times: np.ndarray | None = None
        self._points: np.ndarray | None = None

    def set(
        self,
        names: Sequence[str],
        points: Sequence[tuple[float, Sequence[float]]],
        start_s: float,
        current: np.ndarray,
    ) -> None:
        """Start following `points` [(time_from_start_s, positions)] from `start_s`, beginning at `current`.

        Joints the message leaves out keep their current target; unknown joint names are an error.
        """
        unknown = [n for n in names if n not in self.joint_names]
        if unknown:
            raise SimError(f"unknown joints {unknown}; this robot has {self.joint_names}")
        if not points:
            self.clear()  # an empty trajectory stops the current one, as in joint_trajectory_controller
            return
        index = [self.joint_names.index(n) for n in names]
        times = [0.0]
        rows = [np.asarray(current, dtype=np.float64).copy()]
        for t, positions in points:
            if len(positions) != len(names):
                raise SimError(f"a point has {len(positions)} positions for {len(names)} joint_names")
            if t <= times[-1] and len(times) > 1:
                raise SimError(f"time_from_start must increase; got {t} s after {times[-1]} s")
            row = rows[-1].copy()
            row[index] = positions
            times.append(max(float(t), 1e-9))
            rows.append(row)
        self._times = start_s + np.asarray(times)
        self._points = np.vstack(rows)

    def clear(self) -> None:
        self._times = None
        self._points = None

    @property
    def active(self) -> bool:
        return self._times is not None

    def sample(self, now_s: float) -> np.ndarray | None:
        """The target at `now_s`: interpolated between points, the last point after the end; None if idle."""
        if self._times is None or self._points is None:
            return None
        return np.array([np.interp(now_s, self._times, self._points[:, j]) for j in range(self._points.shape[1])])
