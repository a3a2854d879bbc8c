"""Calibration procedure and `apprentice calibrate` against virtual arms moved by a scripted hand."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apprentice.motors import (
    BUS_CLASSES,
    BusError,
    MotorCalibration,
    VirtualServoBus,
    load_calibration,
    save_calibration,
)
from apprentice.robots import (
    RobotError,
    default_calibration_path,
    find_calibration_file,
    legacy_calibration_path,
    load_robot,
    run_calibration,
)
from apprentice.robots.calibrate_cli import main as calibrate_main

SRC = Path(__file__).parents[2] / "src"
AMPLITUDE = 400.0  # ticks the "hand" moves each joint either side of where it starts


def virtual_arm(robot_type: str, moving: bool = True) -> VirtualServoBus:
    definition = load_robot(robot_type)
    virtual = VirtualServoBus(
        definition.vendor,
        {j.id: j.model for j in definition.joints},
        positions={j.id: 1200.0 + 300 * j.id for j in definition.joints},
    )
    if moving:
        for motor in virtual.motors:
            start = motor.actual
            motor.hand = lambda t, s=start, k=motor.id: s + AMPLITUDE * math.sin(2 * math.pi * (t / 0.25 + k / 7))
    return virtual


def stop_after(seconds: float):
    deadline: list[float] = []

    def done() -> bool:
        deadline or deadline.append(time.monotonic() + seconds)
        return time.monotonic() >= deadline[0]

    return done


@pytest.mark.parametrize("robot_type", ["so101_follower", "koch_leader"])
def test_calibration_records_ranges_and_centres_homing(robot_type: str) -> None:
    definition = load_robot(robot_type)
    with virtual_arm(robot_type) as virtual:
        bus = BUS_CLASSES[definition.vendor](virtual.port, definition.motors())
        bus.connect()
        calibration = run_calibration(
            bus, definition, wait_for_middle=lambda: None, recording_done=stop_after(0.6), period_s=0.005
        )
        assert list(calibration) == definition.joint_names
        for name, cal in calibration.items():
            if name in definition.full_turn_joints:
                assert (cal.range_min, cal.range_max) == (0, 4095)
            else:
                # the hand sweeps ±AMPLITUDE; sampling (slower on a loaded machine) may clip the peaks a bit
                assert 0.7 * 2 * AMPLITUDE <= cal.range_max - cal.range_min <= 2 * AMPLITUDE + 2
            assert cal.drive_mode == definition.calibration_drive_modes.get(name, 0)
        assert bus.read_calibration() == calibration  # written into the motors' EEPROM
        if robot_type == "koch_leader":
            assert virtual.motor(3).get("Drive_Mode") == 1 and virtual.motor(1).get("Operating_Mode") == 4
        bus.disconnect()


def test_joint_that_never_moved_is_named() -> None:
    definition = load_robot("so101_leader")
    with virtual_arm("so101_leader", moving=False) as virtual:
        bus = BUS_CLASSES[definition.vendor](virtual.port, definition.motors())
        bus.connect()
        with pytest.raises(RobotError, match=r"joint\(s\) \['shoulder_pan'.*did not move"):
            run_calibration(bus, definition, wait_for_middle=lambda: None, recording_done=stop_after(0.05))
        bus.disconnect()


def test_cli_non_interactive_show_and_from_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "calib"))
    with virtual_arm("so100_follower") as virtual:
        flags = ["--robot.type=so100_follower", f"--robot.port={virtual.port}", "--robot.id=lab_arm"]
        assert calibrate_main([*flags, "--non_interactive", "--duration_s=0.5"]) == 0
        path = default_calibration_path(load_robot("so100_follower"), "lab_arm")
        # lerobot >= 0.4.3 (0.6.1 too) drives SO-100 and SO-101 as SOFollower, name "so_follower"
        assert path == tmp_path / "calib" / "robots" / "so_follower" / "lab_arm.json"
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json")) == [path.relative_to(tmp_path)]
        saved = json.loads(path.read_text())
        assert set(saved["wrist_roll"]) == {"id", "drive_mode", "homing_offset", "range_min", "range_max"}
        assert (saved["wrist_roll"]["range_min"], saved["wrist_roll"]["range_max"]) == (0, 4095)
        capsys.readouterr()
        assert calibrate_main([*flags, "--show"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert {m: (v["homing_offset"], v["range_min"], v["range_max"]) for m, v in shown.items()} == {
            m: (v["homing_offset"], v["range_min"], v["range_max"]) for m, v in saved.items()
        }
    with virtual_arm("so100_follower", moving=False) as fresh:  # a second arm takes the same file
        out = tmp_path / "copy.json"
        assert (
            calibrate_main(
                [
                    "--robot.type=so100_follower",
                    f"--robot.port={fresh.port}",
                    f"--from_file={path}",
                    f"--calibration_file={out}",
                ]
            )
            == 0
        )
        definition = load_robot("so100_follower")
        bus = BUS_CLASSES["feetech"](fresh.port, definition.motors(), load_calibration(out))
        bus.connect()
        assert bus.is_calibrated()
        bus.disconnect()


def test_cli_interactive_session_through_stdin(tmp_path: Path) -> None:
    out = tmp_path / "leader.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    with virtual_arm("so101_leader") as virtual:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apprentice.cli",
                "calibrate",
                "--teleop.type=so101_leader",
                f"--teleop.port={virtual.port}",
                f"--calibration_file={out}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        process.stdin.write("\n")  # "move to the middle ... press ENTER"
        process.stdin.flush()
        while "Press ENTER to stop" not in (line := process.stdout.readline()):
            assert line, process.stderr.read()
        time.sleep(0.6)  # recording: the scripted hand sweeps every joint meanwhile
        stdout, stderr = process.communicate("\n", timeout=30)  # "press ENTER to stop"
    assert process.returncode == 0, stderr
    assert "saved to" in stdout
    saved = load_calibration(out)
    assert all(c.range_max - c.range_min > AMPLITUDE for c in saved.values())


def test_cli_setup_motors_one_at_a_time(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    definition = load_robot("so101_follower")
    # Six factory-fresh Feetech servos (all id 1, 1 Mbaud); the operator plugs in one at a time.
    with VirtualServoBus("feetech", {j.id: j.model for j in definition.joints}) as virtual:
        fresh = {j.name: virtual.motor(j.id) for j in definition.joints}
        for motor in fresh.values():
            motor.regs[5] = 1  # ID register
            motor.faults.silent = True

        def plug_in(prompt: str) -> str:
            wanted = prompt.split("'")[1]
            for name, motor in fresh.items():
                motor.faults.silent = name != wanted
            return ""

        monkeypatch.setattr("builtins.input", plug_in)
        assert calibrate_main(["--robot.type=so101_follower", f"--robot.port={virtual.port}", "--setup_motors"]) == 0
        assert "'gripper' motor id set to 6 at 1000000 baud (was id 1 at 1000000)" in capsys.readouterr().out
        for motor in fresh.values():
            motor.faults.silent = False
        bus = BUS_CLASSES["feetech"](virtual.port, definition.motors())
        bus.connect()  # the handshake finds all six at their ids and 1 Mbaud
        bus.disconnect()


def test_cli_reports_dead_port_and_bad_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate_main(["--robot.type=so101_follower", "--robot.port=/dev/does-not-exist"]) == 1
    assert "cannot open servo port /dev/does-not-exist" in capsys.readouterr().err
    assert calibrate_main(["--robot.type=no_such_robot", "--robot.port=/dev/null"]) == 1
    assert "available types" in capsys.readouterr().err
    assert calibrate_main([]) == 2


def test_robot_definitions_load_and_bad_ones_are_explained(tmp_path: Path) -> None:
    for robot_type in (
        "so100_follower",
        "so100_leader",
        "so101_follower",
        "so101_leader",
        "koch_follower",
        "koch_leader",
    ):
        definition = load_robot(robot_type)
        assert definition.joint_names == [
            "shoulder_pan",
            "shoulder_lift",
            "elbow_flex",
            "wrist_flex",
            "wrist_roll",
            "gripper",
        ]
        assert definition.gripper == "gripper"
    bad = tmp_path / "arm.yaml"
    bad.write_text("type: x\nvendor: feetech\njoints: [{name: a, id: 1, model: xl330-m288}]\n")
    with pytest.raises(RobotError, match="joint 'a' model xl330-m288 is not a feetech servo"):
        load_robot(bad)
    bad.write_text("type: x\nvendor: feetech\nfull_turn_joints: [b]\njoints: [{name: a, id: 1, model: sts3215}]\n")
    with pytest.raises(RobotError, match=r"unknown joint\(s\) \['b'\]"):
        load_robot(bad)
    bad.write_text("type: x\nvendor: feetech\njoints: [{name: a, id: 1, model: sts9999}]\n")
    with pytest.raises(BusError, match="unknown servo model 'sts9999'"):
        load_robot(bad)


def file_with_offset(path: Path, offset: int) -> Path:
    return save_calibration(path, {"gripper": MotorCalibration(6, 0, offset, 1000, 3000)})


@pytest.mark.parametrize(
    ("robot_type", "newest", "oldest"),
    [
        ("so101_follower", "robots/so_follower", "robots/so101_follower"),
        ("so100_follower", "robots/so_follower", "robots/so100_follower"),
        ("so101_leader", "teleoperators/so_leader", "teleoperators/so101_leader"),
        ("so100_leader", "teleoperators/so_leader", "teleoperators/so100_leader"),
    ],
)
def test_calibration_file_is_found_in_the_newest_lerobot_layout_then_the_old_one(
    robot_type: str, newest: str, oldest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    definition = load_robot(robot_type)
    assert find_calibration_file(definition, "arm") is None
    old = file_with_offset(tmp_path / oldest / "arm.json", 111)  # written by lerobot < 0.4.3
    assert legacy_calibration_path(definition, "arm") == old
    assert find_calibration_file(definition, "arm") == old  # the fallback
    new = file_with_offset(tmp_path / newest / "arm.json", 222)  # written by lerobot >= 0.4.3
    assert default_calibration_path(definition, "arm") == new
    assert find_calibration_file(definition, "arm") == new  # both there: the newest wins
    assert load_calibration(find_calibration_file(definition, "arm"))["gripper"].homing_offset == 222
    old.unlink()
    assert find_calibration_file(definition, "arm") == new
    assert find_calibration_file(definition, "other_arm") is None


def test_arms_whose_lerobot_name_is_their_type_have_one_location(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    # lerobot 0.6.1's class names: KochFollower "koch_follower", KochLeader "koch_leader", OmxFollower
    # "omx_follower", OmxLeader "omx_leader", LeKiwi "lekiwi"; ViperX/WidowX (removed in 0.4.0) "viperx"/"widowx".
    for robot_type in ("koch_follower", "koch_leader", "omx_follower", "omx_leader", "lekiwi", "viperx", "widowx"):
        definition = load_robot(robot_type)
        kind = "robots" if definition.role == "follower" else "teleoperators"
        assert definition.calibration_name == robot_type
        assert default_calibration_path(definition, "a") == tmp_path / kind / robot_type / "a.json"
        assert legacy_calibration_path(definition, "a") is None
        assert find_calibration_file(definition, "a") is None
        written = file_with_offset(tmp_path / kind / robot_type / "a.json", 1)
        assert find_calibration_file(definition, "a") == written


def test_calibrate_cli_writes_the_newest_layout_and_names_an_old_file_it_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    old = file_with_offset(tmp_path / "robots" / "so101_follower" / "lab_arm.json", 111)
    before = old.read_text()
    with virtual_arm("so101_follower") as virtual:
        flags = ["--robot.type=so101_follower", f"--robot.port={virtual.port}", "--robot.id=lab_arm"]
        assert calibrate_main([*flags, "--non_interactive", "--duration_s=0.3"]) == 0
    new = tmp_path / "robots" / "so_follower" / "lab_arm.json"
    out = capsys.readouterr().out
    assert f"saved to {new}" in out and f"left as it was: {old}" in out
    assert set(load_calibration(new)) == set(load_robot("so101_follower").joint_names)
    assert old.read_text() == before  # lerobot < 0.4.3's file is not touched
    assert find_calibration_file(load_robot("so101_follower"), "lab_arm") == new


def test_bad_calibration_name_is_explained(tmp_path: Path) -> None:
    arm = "type: x\nvendor: feetech\njoints: [{name: a, id: 1, model: sts3215}]\n"
    bad = tmp_path / "arm.yaml"
    for name in ("../so_follower", "'..'", "[so_follower]"):
        bad.write_text(f"{arm}calibration_name: {name}\n")
        with pytest.raises(RobotError, match=rf"{bad}: calibration_name must be one folder name"):
            load_robot(bad)
    bad.write_text(f"{arm}calibration_name: my_arms\n")
    assert load_robot(bad).calibration_name == "my_arms"
    bad.write_text(arm)
    assert load_robot(bad).calibration_name == "x"
