"""Two SO-101 arms as one robot: prefixed joint names, lerobot's per-arm calibration files, one contract."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from apprentice.contract import load_contract
from apprentice.motors import BusError, MotorCalibration, save_calibration
from apprentice.robots import BimanualArm, BimanualDefinition, RobotError, load_definition, load_robot
from apprentice.robots.virtual_arm import make_virtual_robot

CONTRACTS = Path(__file__).parents[2] / "config" / "contracts"
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def test_joint_names_are_prefixed_left_then_right() -> None:
    for robot_type, arm_type in (("bi_so101_follower", "so101_follower"), ("bi_so101_leader", "so101_leader")):
        definition = load_definition(robot_type)
        assert isinstance(definition, BimanualDefinition)
        assert definition.joint_names == [f"left_{j}" for j in JOINTS] + [f"right_{j}" for j in JOINTS]
        assert all(d.type == arm_type for d in definition.arms.values())


def test_calibration_files_are_named_as_lerobot_names_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    definition = load_definition("bi_so101_follower")
    paths = definition.calibration_paths("bimanual")
    # lerobot 0.6.1's bi_so_follower: two SOFollower arms (name "so_follower") with ids "<id>_left" / "<id>_right"
    assert paths == {
        "left": tmp_path / "robots" / "so_follower" / "bimanual_left.json",
        "right": tmp_path / "robots" / "so_follower" / "bimanual_right.json",
    }
    leader = load_definition("bi_so101_leader").calibration_paths("bimanual")
    assert leader["right"] == tmp_path / "teleoperators" / "so_leader" / "bimanual_right.json"
    assert definition.find_calibration_files("bimanual") == {"left": None, "right": None}
    # left calibrated by lerobot >= 0.4.3, right still in lerobot < 0.4.3's bi_so100 layout of its arm type
    cal = {"gripper": MotorCalibration(6, 0, 0, 1000, 3000)}
    save_calibration(paths["left"], cal)
    old_right = save_calibration(tmp_path / "robots" / "so101_follower" / "bimanual_right.json", cal)
    assert definition.find_calibration_files("bimanual") == {"left": paths["left"], "right": old_right}
    save_calibration(paths["right"], cal)
    assert definition.find_calibration_files("bimanual") == paths


def test_one_contract_covers_both_arms() -> None:
    contract = load_contract(CONTRACTS / "bi_so101.yaml")
    names = load_definition("bi_so101_follower").joint_names
    state, action = contract.spec("observation.state"), contract.spec("action")
    assert state.names == names and action.names == names and len(names) == 12
    assert contract.features["observation.state"]["shape"] == [12]
    assert contract.features["action"]["names"] == names


def test_two_arms_on_two_buses_behave_as_one(tmp_path) -> None:
    definition = load_definition("bi_so101_follower")
    virtual = make_virtual_robot(definition)
    ports = virtual.start().split(",")
    try:
        # Different calibration files per arm: each bus gets its own.
        calibrations = {
            side: {n: MotorCalibration(i + 1, 0, offset, 1000, 3000) for i, n in enumerate(JOINTS)}
            for side, offset in (("left", -100), ("right", 200))
        }
        for side, cal in calibrations.items():
            save_calibration(tmp_path / f"{side}.json", cal)
        arm = BimanualArm(definition, ports, calibration=calibrations, max_relative_target=0.3)
        arm.connect()
        left, right = virtual.buses
        assert {m.get("Homing_Offset") for m in left.motors} == {-100}
        assert {m.get("Homing_Offset") for m in right.motors} == {200}
        assert arm.torque_enabled and all(m.get("Torque_Enable") for b in virtual.buses for m in b.motors)
        start = arm.read_positions()
        assert start.shape == (12,)
        goal = start.copy()
        goal[2], goal[6 + 2] = start[2] + 0.2, start[8] - 1.0  # left elbow, right elbow (clamped to 0.3)
        sent = arm.send_positions(goal)
        np.testing.assert_allclose(sent[[2, 8]], [start[2] + 0.2, start[8] - 0.3], atol=0.002)
        time.sleep(0.25)
        positions, velocities = arm.read_positions_and_velocities()
        np.testing.assert_allclose(positions, sent, atol=0.005)
        assert velocities.shape == (12,)
        with pytest.raises(RobotError, match="12 positions"):
            arm.send_positions(np.zeros(6))
        arm.set_torque(False)
        assert not any(m.get("Torque_Enable") for b in virtual.buses for m in b.motors)
        arm.disconnect()
    finally:
        virtual.stop()


def test_a_missing_right_arm_releases_the_left_one() -> None:
    definition = load_definition("bi_so101_follower")
    virtual = make_virtual_robot(definition)
    left_port, _ = virtual.start().split(",")
    try:
        arm = BimanualArm(definition, [left_port, "/dev/nonexistent-right"])
        with pytest.raises(BusError, match="/dev/nonexistent-right"):
            arm.connect()
        assert not any(m.get("Torque_Enable") for m in virtual.buses[0].motors)
        with pytest.raises(RobotError, match="needs two ports"):
            BimanualArm(definition, [left_port])
    finally:
        virtual.stop()


def test_bad_bimanual_files_name_what_to_fix(tmp_path) -> None:
    bad = tmp_path / "bi.yaml"
    bad.write_text("type: bi\nrole: follower\narms: {left: so101_follower, right: so101_leader}\n")
    with pytest.raises(RobotError, match="both arms must be followers"):
        load_definition(bad)
    with pytest.raises(RobotError, match="two-arm robot"):
        load_robot("bi_so101_follower")  # single-arm tools (calibrate) say to use each arm's own type
