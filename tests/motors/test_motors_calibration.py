"""LeRobot calibration files and normalization, checked against LeRobot's formulas by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from apprentice.motors import (
    BusError,
    FeetechBus,
    Motor,
    MotorCalibration,
    MotorNormMode,
    VirtualServoBus,
    load_calibration,
    normalize,
    radians_to_ticks,
    save_calibration,
    ticks_to_radians,
    unnormalize,
)
from apprentice.motors.dynamixel import DynamixelBus

# Exactly what `lerobot-calibrate --robot.type=so101_follower` writes (json.dump(..., indent=4)).
LEROBOT_FILE = """{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1470,
        "range_min": 758,
        "range_max": 3292
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 1407,
        "range_min": 2031,
        "range_max": 3476
    }
}"""


def test_lerobot_file_loads_and_saves_byte_identical(tmp_path: Path) -> None:
    source = tmp_path / "lerobot.json"
    source.write_text(LEROBOT_FILE)
    calibration = load_calibration(source)
    assert calibration["shoulder_pan"] == MotorCalibration(1, 0, -1470, 758, 3292)
    copy = save_calibration(tmp_path / "robots" / "so101_follower" / "arm.json", calibration)
    assert copy.read_text() == LEROBOT_FILE
    assert not [p for p in copy.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"gripper": {"id": 6, "drive_mode": 0}}', r"motor 'gripper' lacks field\(s\) \['homing_offset'"),
        (
            '{"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 1.5, "range_min": 1, "range_max": 9}}',
            r"\['homing_offset'\] must be integers",
        ),
        (
            '{"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 0, "range_min": 9, "range_max": 9}}',
            "range_max .9. must exceed range_min",
        ),
    ],
)
def test_bad_calibration_files_name_the_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "arm.json"
    path.write_text(content)
    with pytest.raises(BusError, match=message) as info:
        load_calibration(path)
    assert str(path) in str(info.value)
    with pytest.raises(BusError, match="does not exist; run `apprentice calibrate`"):
        load_calibration(tmp_path / "missing.json")


def test_normalization_matches_lerobot_formulas() -> None:
    cal = MotorCalibration(id=1, drive_mode=0, homing_offset=0, range_min=1000, range_max=3000)
    flipped = MotorCalibration(id=1, drive_mode=1, homing_offset=0, range_min=1000, range_max=3000)
    m100, r100, deg = MotorNormMode.RANGE_M100_100, MotorNormMode.RANGE_0_100, MotorNormMode.DEGREES
    assert normalize(2000, cal, m100, 4096, True) == 0.0
    assert normalize(3000, cal, m100, 4096, True) == 100.0
    assert normalize(5000, cal, m100, 4096, True) == 100.0  # clipped to the range
    assert normalize(3000, flipped, m100, 4096, True) == -100.0
    assert normalize(3000, flipped, m100, 4096, False) == 100.0  # Dynamixel: hardware inverts, not software
    assert normalize(1500, cal, r100, 4096, True) == 25.0
    assert normalize(1500, flipped, r100, 4096, True) == 75.0
    assert normalize(2000 + 4095 / 4, cal, deg, 4096, True) == pytest.approx(90.0)
    assert normalize(0, cal, deg, 4096, True) == pytest.approx(-2000 * 360 / 4095)  # degrees are not clipped
    assert unnormalize(0.0, cal, m100, 4096, True) == 2000
    assert unnormalize(-100.0, flipped, m100, 4096, True) == 3000
    assert unnormalize(25.0, cal, r100, 4096, True) == 1500
    assert unnormalize(90.0, cal, deg, 4096, True) == 2000 + 4095 // 4
    assert ticks_to_radians(3023.75, cal, 4096) == pytest.approx(math.pi / 2)
    assert radians_to_ticks(math.pi / 2, cal, 4096) == 3024


@pytest.mark.parametrize(
    ("protocol", "bus_class", "model"),
    [("feetech", FeetechBus, "sts3215"), ("dynamixel", DynamixelBus, "xl330-m288")],
)
def test_half_turn_homing_and_calibration_roundtrip_on_the_wire(
    protocol: str, bus_class: type, model: str
) -> None:
    positions = {1: 300.0, 2: 3900.0}
    with VirtualServoBus(protocol, {1: model, 2: model}, positions=positions) as virtual:
        bus = bus_class(virtual.port, {"a": Motor(1, model), "b": Motor(2, model)})
        bus.connect()
        offsets = bus.set_half_turn_homings()
        assert bus.sync_read("Present_Position", normalize=False) == {"a": 2047, "b": 2047}
        sign = 1 if protocol == "feetech" else -1  # Present = Actual - offset (Feetech), + offset (Dynamixel)
        assert offsets == {"a": sign * (300 - 2047), "b": sign * (3900 - 2047)}
        calibration = {
            "a": MotorCalibration(1, 0, offsets["a"], 1500, 2600),
            "b": MotorCalibration(2, 0, offsets["b"], 1000, 3000),
        }
        bus.write_calibration(calibration)
        assert bus.read_calibration() == calibration
        assert bus.is_calibrated()
        assert bus.read("Present_Position", "a") == pytest.approx((2047 - 2050) * 360 / 4095)
        bus.disconnect()
