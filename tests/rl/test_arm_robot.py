"""`RobotEnv` over a servo arm on the virtual Feetech bus, with the SO-101's URDF kinematics (pinocchio)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("pinocchio")

from apprentice.motors import MotorCalibration, VirtualServoBus
from apprentice.rl.arm_robot import ServoArmRobot, UrdfKinematics
from apprentice.rl.robot_env import RobotEnv, RobotEnvConfig
from apprentice.robots import Arm, load_robot
from apprentice.teleop.kinematics import load_kinematics

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
CALIBRATION = {name: MotorCalibration(id=i + 1, drive_mode=0, homing_offset=0, range_min=0, range_max=4095)
               for i, name in enumerate(JOINTS)}
RESET = [0.0, -0.4, 0.6, 0.9, 0.0, 0.3]


def test_end_effector_steps_on_a_servo_arm_stay_in_the_workspace():
    definition = load_robot("so101_follower")
    with VirtualServoBus("feetech", {j.id: j.model for j in definition.joints}, tau_s=0.01,
                         positions={j.id: 2047.0 for j in definition.joints}) as virtual:
        arm = Arm(definition, virtual.port, calibration=CALIBRATION, max_relative_target=0.3, num_retry=1)
        arm.connect()
        try:
            robot = ServoArmRobot(arm)
            kinematics = UrdfKinematics(load_kinematics("so101_follower"), robot.joint_names)
            start_tip = kinematics.fk(np.asarray(RESET))
            bounds = {"min": (start_tip - 0.05).tolist(), "max": (start_tip + np.array([0.02, 0.05, 0.05])).tolist()}
            env = RobotEnv(robot, RobotEnvConfig(fps=20, fixed_reset_joint_positions=RESET, reset_time_s=1.0,
                                                 end_effector_bounds=bounds, end_effector_step_sizes={
                                                     "x": 0.01, "y": 0.01, "z": 0.01}), kinematics)
            env.reset()
            np.testing.assert_allclose(robot.read_joints(), RESET, atol=0.02)
            started = time.monotonic()
            for _ in range(10):  # +x at full speed: 10 cm asked, 2 cm allowed
                env.step(np.array([1.0, 0.0, 0.0, 1.0]))
            assert time.monotonic() - started >= 10 / 20 - 0.05  # wait() kept the 20 Hz period
            time.sleep(0.2)
            tip = kinematics.fk(robot.read_joints())
            assert tip[0] == pytest.approx(bounds["max"][0], abs=0.004)
            assert abs(tip[1] - start_tip[1]) < 0.004 and abs(tip[2] - start_tip[2]) < 0.004
            assert robot.read_joints()[5] == pytest.approx(RESET[5], abs=2 * 2 * math.pi / 4095)  # gripper: stay
        finally:
            arm.disconnect(disable_torque=False)
