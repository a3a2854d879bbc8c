"""OMX follower/leader and the ALOHA arms (ViperX follower, WidowX leader) end to end on virtual buses:
calibration and its lerobot-format file, configure registers, torque per role, limits, joint read/write,
and the shadow motors of the Interbotix shoulders and elbows."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from apprentice.motors import BUS_CLASSES, MotorCalibration, load_calibration, save_calibration
from apprentice.robots import Arm, RobotError, default_calibration_path, load_robot, run_calibration
from apprentice.robots.calibrate_cli import main as calibrate_main
from apprentice.robots.virtual_arm import make_virtual_arm

LEROBOT_FIELDS = ["id", "drive_mode", "homing_offset", "range_min", "range_max"]


def calibrate(robot_type: str, virtual, **kwargs) -> dict:
    definition = load_robot(robot_type)
    bus = BUS_CLASSES[definition.vendor](virtual.port, definition.motors())
    bus.connect()
    try:
        return run_calibration(bus, definition, **kwargs)
    finally:
        bus.disconnect()


def never() -> None:
    raise AssertionError("an OMX calibration must not ask for motion")


@pytest.mark.parametrize("robot_type", ["omx_follower", "omx_leader"])
def test_omx_factory_calibration_file_is_lerobots(robot_type: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    definition = load_robot(robot_type)
    with make_virtual_arm(definition) as virtual:
        calibration = calibrate(robot_type, virtual, wait_for_middle=never, recording_done=never)
        path = save_calibration(default_calibration_path(definition, "omx1"), calibration)
    kind = "robots" if robot_type == "omx_follower" else "teleoperators"
    assert path == tmp_path / kind / robot_type / "omx1.json"  # lerobot's <kind>/<Robot.name>/<id>.json
    data = json.loads(path.read_text())
    ids = [11, 12, 13, 14, 15, 16] if robot_type == "omx_follower" else [1, 2, 3, 4, 5, 6]
    assert list(data) == definition.joint_names and [e["id"] for e in data.values()] == ids
    assert all(list(e) == LEROBOT_FIELDS for e in data.values())
    # lerobot's OmxFollower/OmxLeader.calibrate(): homing 0 (leader gripper 100, inverted), range 0..4095
    gripper = {"leader": [6, 1, 100, 0, 4095], "follower": [16, 0, 0, 0, 4095]}[definition.role]
    assert [data["gripper"][f] for f in LEROBOT_FIELDS] == gripper
    assert all(data[n]["homing_offset"] == 0 and data[n]["range_max"] == 4095 for n in definition.joint_names[:5])
    assert load_calibration(path) == calibration
    assert path.read_text() == json.dumps(data, indent=4)  # lerobot writes json.dump(..., indent=4)


def test_omx_follower_configures_holds_torque_and_clamps(tmp_path) -> None:
    definition = load_robot("omx_follower")
    with make_virtual_arm(definition, tau_s=0.01) as virtual:
        calibration = calibrate("omx_follower", virtual, wait_for_middle=never, recording_done=never)
        arm = Arm(definition, virtual.port, calibration=calibration, max_relative_target=0.2)
        arm.connect()
        by_id = {m.id: m for m in virtual.motors}
        assert [by_id[i].get("Operating_Mode") for i in range(11, 17)] == [4, 4, 4, 4, 4, 5]
        assert (by_id[13].get("Position_P_Gain"), by_id[13].get("Position_D_Gain")) == (1500, 600)
        assert all(m.get("Torque_Enable") == 1 for m in virtual.motors)
        start = arm.read_positions()
        sent = arm.send_positions(start + 1.0)  # one radian asked, 0.2 allowed per command
        np.testing.assert_allclose(sent, start + 0.2, atol=2 * math.pi / 4095)
        time.sleep(0.1)
        np.testing.assert_allclose(arm.read_positions(), sent, atol=0.005)
        arm.disconnect()
        assert all(m.get("Torque_Enable") == 0 for m in virtual.motors)


def test_omx_leader_is_free_but_its_gripper_is_a_spring_back_trigger() -> None:
    definition = load_robot("omx_leader")
    with make_virtual_arm(definition, tau_s=0.01) as virtual:
        calibration = calibrate("omx_leader", virtual, wait_for_middle=never, recording_done=never)
        arm = Arm(definition, virtual.port, calibration=calibration)
        arm.connect()
        gripper = virtual.motor(6)
        assert [virtual.motor(i).get("Torque_Enable") for i in range(1, 7)] == [0, 0, 0, 0, 0, 1]
        assert [gripper.get(r) for r in ("Operating_Mode", "Current_Limit", "Goal_Current")] == [5, 100, 100]
        assert (gripper.get("Drive_Mode"), gripper.get("Homing_Offset")) == (1, 100)
        assert gripper.get("Goal_Position") == int(60 / 100 * 4095)  # lerobot's gripper_open_pos = 60
        virtual.motor(2).set_hand_position(2500)  # the operator moves the shoulder
        assert arm.read_positions()[1] == pytest.approx((2500 - 2047.5) * 2 * math.pi / 4095)
        arm.disconnect()


def test_viperx_shadows_are_linked_mirrored_and_follow_their_primaries() -> None:
    definition = load_robot("viperx")
    joints = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"]
    assert definition.joint_names == joints
    assert definition.motor_names[-2:] == ["shoulder_shadow", "elbow_shadow"]
    with make_virtual_arm(definition, tau_s=0.01) as virtual:
        with pytest.raises(RobotError, match="shadow motor 'shoulder_shadow' reads 4096 ticks away from 'shoulder'"):
            Arm(definition, virtual.port).connect()  # uncalibrated: the mirrored frames disagree
        assert all(m.get("Torque_Enable") == 0 for m in virtual.motors)
        # Every shaft at 2048; a shadow reads -actual + offset in its inverted frame: both read 2047.
        shadows = {"shoulder_shadow", "elbow_shadow"}
        calibration = {
            name: MotorCalibration(m.id, int(name in shadows), 4095 if name in shadows else -1, 1000, 3000)
            for name, m in definition.motors().items()
        }
        arm = Arm(definition, virtual.port, calibration=calibration)
        arm.connect()
        assert (virtual.motor(3).get("Secondary_ID"), virtual.motor(5).get("Secondary_ID")) == (2, 4)
        assert (virtual.motor(3).get("Drive_Mode"), virtual.motor(5).get("Drive_Mode")) == (1, 1)
        assert virtual.motor(2).get("Secondary_ID") == 255
        assert all(m.get("Torque_Enable") == 1 for m in virtual.motors)  # shadows hold torque too
        primary_start, shadow_start = virtual.motor(4).actual, virtual.motor(5).actual
        goal = arm.read_positions()
        goal[2] += 0.5  # elbow only: the command names primaries, the shadow is not a joint
        arm.send_positions(goal)
        time.sleep(0.1)
        for m in virtual.motors:
            m.step()
        turned = 0.5 * 4095 / (2 * math.pi)
        assert virtual.motor(4).actual - primary_start == pytest.approx(turned, abs=2)
        assert virtual.motor(5).actual - shadow_start == pytest.approx(-turned, abs=2)  # mirrored shaft
        assert virtual.motor(1).actual == pytest.approx(2048, abs=1)
        arm.disconnect()


def test_widowx_calibration_covers_the_shadows_and_round_trips(tmp_path) -> None:
    definition = load_robot("widowx")
    with make_virtual_arm(definition, motion="sine", amplitude=300, period_s=0.3) as virtual:
        deadline: list[float] = []

        def done() -> bool:
            deadline or deadline.append(time.monotonic() + 0.5)
            return time.monotonic() >= deadline[0]

        calibration = calibrate("widowx", virtual, wait_for_middle=lambda: None, recording_done=done, period_s=0.005)
        assert list(calibration) == definition.motor_names  # 9 motors, as lerobot's widowx file
        assert (calibration["shoulder_shadow"].drive_mode, calibration["elbow_shadow"].drive_mode) == (1, 1)
        assert all(c.range_max - c.range_min > 200 for c in calibration.values())
        path = save_calibration(tmp_path / "widowx.json", calibration)
        assert load_calibration(path) == calibration
        # Reconnecting with the file: the shadows were unlinked while it was written, so writing a primary's
        # homing offset did not overwrite its shadow's, and the motors hold exactly the file.
        # Hold the arm still for the reconnect: connect() compares each shadow with its primary, and on a
        # loaded machine the virtual bus may read the two a few ms apart while the 0.3 s sine moves them
        # ~10 ticks per ms. Both keep the sine's t = 0 pose, so they stay mirrored.
        poses = {motor.id: float(motor.hand(0.0)) for motor in virtual.motors if motor.hand is not None}
        for motor in virtual.motors:
            if motor.id in poses:
                motor.hand = lambda _t, still=poses[motor.id]: still
        arm = Arm(definition, virtual.port, calibration=load_calibration(path))
        arm.connect()
        assert arm.bus.is_calibrated()
        assert virtual.motor(3).get("Homing_Offset") == calibration["shoulder_shadow"].homing_offset
        assert [m.get("Torque_Enable") for m in virtual.motors] == [0] * 9  # a leader is moved by hand
        arm.disconnect()


def test_calibrate_cli_writes_the_omx_factory_file_without_prompting(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    monkeypatch.setattr("builtins.input", never)  # interactive mode, yet nothing to ask
    with make_virtual_arm(load_robot("omx_leader")) as virtual:
        flags = ["--teleop.type=omx_leader", f"--teleop.port={virtual.port}", "--teleop.id=trigger"]
        assert calibrate_main(flags) == 0
        assert virtual.motor(6).get("Homing_Offset") == 100 and virtual.motor(6).get("Drive_Mode") == 1
    saved = load_calibration(tmp_path / "teleoperators" / "omx_leader" / "trigger.json")
    assert saved["gripper"] == MotorCalibration(6, 1, 100, 0, 4095)


def test_lekiwi_calibration_holds_the_wheels_as_lerobot_does(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    definition = load_robot("lekiwi")
    with make_virtual_arm(definition, motion="sine", amplitude=300, period_s=0.3) as virtual:
        flags = ["--robot.type=lekiwi", f"--robot.port={virtual.port}", "--robot.id=kiwi"]
        assert calibrate_main([*flags, "--non_interactive", "--duration_s=0.5"]) == 0
    saved = json.loads((tmp_path / "robots" / "lekiwi" / "kiwi.json").read_text())
    assert list(saved) == definition.motor_names  # lerobot's 9 motors, arm then base
    for wheel, motor_id in (("base_left_wheel", 7), ("base_back_wheel", 8), ("base_right_wheel", 9)):
        assert [saved[wheel][f] for f in LEROBOT_FIELDS] == [motor_id, 0, 0, 0, 4095]
    assert (saved["arm_wrist_roll"]["range_min"], saved["arm_wrist_roll"]["range_max"]) == (0, 4095)
    assert saved["arm_elbow_flex"]["range_max"] - saved["arm_elbow_flex"]["range_min"] > 300
