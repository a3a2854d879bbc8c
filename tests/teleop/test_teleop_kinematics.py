"""ArmKinematics on the shipped URDFs: FK/IK round trips, joint limits, lookup by robot and clear errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from apprentice.resources import config_path
from apprentice.robots import load_robot
from apprentice.teleop import ArmKinematics, TeleopError, load_kinematics

ARMS = ["so100", "so101", "koch", "omx"]
CHAIN = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]


def sample_within_limits(k: ArmKinematics, rng: np.random.Generator, n: int) -> np.ndarray:
    # 5 % in from each limit: a pose exactly at a limit is reachable but not the interesting case here.
    margin = 0.05 * (k.upper - k.lower)
    return rng.uniform(k.lower + margin, k.upper - margin, size=(n, len(k.joint_names)))


@pytest.mark.parametrize("arm", ARMS)
def test_fk_of_ik_is_within_a_millimetre_over_the_workspace(arm: str) -> None:
    k = load_kinematics(arm)
    assert k.joint_names == CHAIN  # the robot YAMLs' names; the gripper is not in the chain
    rng = np.random.default_rng(7)
    errors = []
    for q in sample_within_limits(k, rng, 120):
        target = k.fk(q)
        seed = np.clip(q + rng.normal(0.0, 0.3, q.shape), k.lower, k.upper)  # a teleop-like nearby seed
        solution = k.ik(target, seed)
        assert np.all(solution >= k.lower) and np.all(solution <= k.upper)
        errors.append(np.linalg.norm(k.fk(solution)[:3, 3] - target[:3, 3]))
    assert max(errors) < 1e-3, f"{arm}: worst round trip {max(errors) * 1e3:.3f} mm"


@pytest.mark.parametrize("arm", ARMS)
def test_ik_from_the_zero_pose_reaches_sampled_poses(arm: str) -> None:
    k = load_kinematics(arm)
    rng = np.random.default_rng(11)
    for q in sample_within_limits(k, rng, 25):
        target = k.fk(q)
        result = k.solve(target, np.zeros(5), orientation_weight=0.0)
        assert result.reached and result.position_error < 1e-3, (arm, q, result)


def test_so101_dimensions_are_the_published_models() -> None:
    # TheRobotStudio's so101_new_calib.urdf puts gripper_frame_link here at the zero (calibration middle)
    # pose; a typo in any link length of config/urdf/so101.urdf moves it.
    k = load_kinematics("so101_follower")
    np.testing.assert_allclose(k.fk(np.zeros(5))[:3, 3], [0.391361, -0.000009, 0.226470], atol=2e-5)
    # Pan turns the reach about the vertical axis only; the wrist roll leaves the tool point nearly still.
    turned = k.fk(np.array([0.5, 0, 0, 0, 0]))[:3, 3]
    assert turned[2] == pytest.approx(0.226470, abs=2e-5)
    assert np.linalg.norm(k.fk(np.array([0, 0, 0, 0, 1.0]))[:3, 3] - k.fk(np.zeros(5))[:3, 3]) < 0.02


def test_unreachable_target_gives_the_nearest_reachable_pose_within_limits() -> None:
    k = load_kinematics("so101")
    far = np.eye(4)
    far[:3, 3] = [1.0, 0.0, 0.2]  # a metre out: the arm reaches about 0.4 m
    result = k.solve(far, np.zeros(5), orientation_weight=0.0)
    assert not result.reached
    assert np.all(result.q >= k.lower) and np.all(result.q <= k.upper)
    reached = k.fk(result.q)[:3, 3]
    assert result.position_error == pytest.approx(np.linalg.norm(reached - far[:3, 3]), abs=1e-9)
    # Stretched toward the target: nothing reachable from the zero pose region is much closer.
    assert reached[0] > 0.38 and result.position_error < 0.62


def test_robot_definition_limits_narrow_the_urdf_and_are_never_exceeded() -> None:
    definition = load_robot("so101_follower")
    joints = [
        dataclasses.replace(j, lower=-0.2, upper=0.2) if j.name == "shoulder_pan" else j for j in definition.joints
    ]
    narrowed = dataclasses.replace(definition, joints=joints)
    k = load_kinematics(narrowed)
    pan = k.joint_names.index("shoulder_pan")
    assert (k.lower[pan], k.upper[pan]) == (-0.2, 0.2)
    wide = load_kinematics("so101_follower")
    assert k.lower[1:].tolist() == wide.lower[1:].tolist()  # untouched joints keep the URDF's range
    target = wide.fk(np.array([0.8, 0.2, 0.1, 0.0, 0.0]))  # reachable only with the pan at 0.8 rad
    result = k.solve(target, np.zeros(5))
    assert not result.reached and result.position_error > 0.01
    assert -0.2 <= result.q[pan] <= 0.2
    assert result.q[pan] == pytest.approx(0.2, abs=1e-9)  # as far toward the target as allowed


def test_lookup_by_robot_type_name_and_path() -> None:
    for robot_type in ("so100_follower", "so101_leader", "koch_follower"):
        assert load_kinematics(robot_type).joint_names == CHAIN
        definition = load_robot(robot_type)
        assert set(CHAIN) <= set(definition.joint_names) and definition.gripper not in CHAIN
    by_path = load_kinematics(str(config_path("kinematics", "omx.yaml")))
    assert by_path.config is not None and "omx_follower" in by_path.config.robot_types


def test_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(TeleopError, match=r"no kinematics for robot 'nope'.*so101_follower"):
        load_kinematics("nope")
    with pytest.raises(TeleopError, match="does not exist"):
        ArmKinematics(tmp_path / "missing.urdf")
    k = load_kinematics("so101")
    with pytest.raises(TeleopError, match="no frame 'tool0'"):
        ArmKinematics(k.urdf, "tool0")
    with pytest.raises(TeleopError, match="5 finite radians"):
        k.fk(np.zeros(4))
    with pytest.raises(TeleopError, match="finite 4x4"):
        k.ik(np.eye(3), np.zeros(5))
    with pytest.raises(TeleopError, match="weights"):
        k.ik(np.eye(4), np.zeros(5), position_weight=0.0, orientation_weight=0.0)
    bad = tmp_path / "arm.yaml"
    bad.write_text("urdf: urdf/so101.urdf\nframes: x\n")
    with pytest.raises(TeleopError, match=r"unknown field\(s\) \['frames'\]"):
        load_kinematics(str(bad))
    assert math.isfinite(k.fk(np.zeros(5))[0, 3])
