"""Joint-trajectory following (what the sim node does with a JointTrajectory message)."""

from __future__ import annotations

import numpy as np
import pytest

from apprentice.sim import SimError
from apprentice.sim.trajectory import TrajectoryFollower


def test_interpolates_from_the_current_target_and_holds_the_last_point() -> None:
    f = TrajectoryFollower(["a", "b", "c"])
    assert f.sample(0.0) is None
    f.set(["c", "a"], [(1.0, [1.0, 2.0]), (2.0, [3.0, 4.0])], start_s=10.0, current=np.zeros(3))
    np.testing.assert_allclose(f.sample(10.0), [0, 0, 0])
    np.testing.assert_allclose(f.sample(10.5), [1.0, 0, 0.5])  # joints by name; b is left alone
    np.testing.assert_allclose(f.sample(11.5), [3.0, 0, 2.0])
    np.testing.assert_allclose(f.sample(99.0), [4.0, 0, 3.0])
    f.set([], [], start_s=0.0, current=np.zeros(3))  # an empty trajectory stops following
    assert not f.active


def test_rejects_unknown_joints_and_bad_points() -> None:
    f = TrajectoryFollower(["a", "b"])
    with pytest.raises(SimError, match="unknown joints"):
        f.set(["z"], [(1.0, [0.0])], 0.0, np.zeros(2))
    with pytest.raises(SimError, match="positions"):
        f.set(["a", "b"], [(1.0, [0.0])], 0.0, np.zeros(2))
    with pytest.raises(SimError, match="increase"):
        f.set(["a"], [(1.0, [0.0]), (0.5, [1.0])], 0.0, np.zeros(2))
