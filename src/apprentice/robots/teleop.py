"""Teleoperation inputs. The teleop node asks a TeleopSource for the follower's next joint targets.

A leader arm is the first source; the input devices of apprentice.teleop (keyboard, gamepad, Joy, phone:
joint velocities or end-effector deltas through IK) implement the same methods and plug into the same node.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from apprentice.robots.arm import Arm


class TeleopSource(Protocol):
    joint_names: list[str]

    def read(self) -> np.ndarray | None:
        """The follower's joint targets now (radians, in `joint_names` order); None: hold (publish nothing)."""
        ...

    def close(self) -> None: ...


class LeaderArmSource:
    """A leader arm moved by hand (torque off): its joint angles are the follower's targets."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.joint_names = arm.joint_names

    def read(self) -> np.ndarray:
        return self.arm.read_positions()

    def close(self) -> None:
        self.arm.disconnect(disable_torque=True)
