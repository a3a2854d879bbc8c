"""`RobotEnv` on real hardware: a servo `Arm` with its cameras, and its URDF kinematics.

`ServoArmRobot` is the `Robot` of `apprentice.rl.robot_env` over `apprentice.robots.Arm` (the vendor SDK
bus: Feetech or Dynamixel, or the virtual servo bus) and camera `FrameSource`s; its `wait` keeps the
control period (it sleeps to the next tick, so the policy's compute time is part of the period, as the
driver node does). `UrdfKinematics` is the `Kinematics` over `apprentice.teleop.kinematics.ArmKinematics`
(pinocchio): the end-effector position of the URDF chain, IK that keeps the present orientation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np


class ServoArmRobot:
    def __init__(self, arm: Any, cameras: Mapping[str, Any] | None = None) -> None:
        self.arm = arm
        self.cameras = dict(cameras or {})
        self.joint_names = list(arm.joint_names)
        self._next_tick: float | None = None

    def read_joints(self) -> np.ndarray:
        return self.arm.read_positions()

    def send_joints(self, q: np.ndarray) -> None:
        # The arm clamps each command to max_relative_target around the last *read* position: read first,
        # or a run of commands without reads (the reset's path) stays stuck one clamp from the start.
        self.arm.read_positions()
        self.arm.send_positions(np.asarray(q, dtype=float))

    def read_images(self) -> dict[str, np.ndarray]:
        return {name: source.read() for name, source in self.cameras.items()}

    def wait(self, seconds: float) -> None:
        now = time.monotonic()
        # A late step (slow policy) restarts the schedule instead of rushing the following steps.
        if self._next_tick is None or now > self._next_tick + seconds:
            self._next_tick = now
        self._next_tick += seconds
        time.sleep(max(0.0, self._next_tick - now))

    def close(self) -> None:
        for source in self.cameras.values():
            source.close()


class UrdfKinematics:
    """FK/IK over the robot's joint vector; joints outside the URDF chain (the gripper) are left alone."""

    def __init__(self, kinematics: Any, joint_names: list[str], orientation_weight: float = 0.01) -> None:
        missing = [n for n in kinematics.joint_names if n not in joint_names]
        if missing:
            from apprentice.rl.robot_env import RobotEnvError

            raise RobotEnvError(f"the URDF chain has joint(s) {missing} the robot does not: {joint_names}")
        self.kinematics = kinematics
        self.index = [joint_names.index(n) for n in kinematics.joint_names]
        self.orientation_weight = orientation_weight

    def fk(self, q: np.ndarray) -> np.ndarray:
        return self.kinematics.fk(np.asarray(q, float)[self.index])[:3, 3].copy()

    def ik(self, position: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        q = np.asarray(q_seed, dtype=float).copy()
        target = self.kinematics.fk(q[self.index])
        target[:3, 3] = position  # move the tip, keep its present orientation (softly: 5-joint arms cannot)
        q[self.index] = self.kinematics.ik(target, q[self.index], orientation_weight=self.orientation_weight)
        return q
