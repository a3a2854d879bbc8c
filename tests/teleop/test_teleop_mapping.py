"""Device maps: the shipped ones load and fit the SO-101; bad files fail with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.resources import config_path
from apprentice.robots import load_robot
from apprentice.teleop import TeleopError, load_device_map
from apprentice.teleop.mapping import apply_deadzone

SHIPPED = sorted(config_path("teleop").glob("*.yaml"))


def test_every_shipped_map_loads_and_fits_the_so101() -> None:
    assert {p.stem for p in SHIPPED} >= {"keyboard", "keyboard_joints", "gamepad", "gamepad_joints", "phone"}
    joints = [j.name for j in load_robot("so101_follower").joints]
    for path in SHIPPED:
        device_map = load_device_map(path)
        device_map.check_joints(joints, path.name)
        assert device_map.axes, path
        assert set(device_map.episode) == {"start", "stop", "rerecord", "discard"}, path


def test_gamepad_map_reads_dead_zone_and_tables() -> None:
    device_map = load_device_map(config_path("teleop", "gamepad_joints.yaml"))
    assert {b.deadzone for b in device_map.axes} == {0.1}
    assert device_map.deadman == "tl" and device_map.intervention == "tr"
    assert device_map.evdev["axes"]["ABS_Y"] == "-left_y" and device_map.joy["buttons"][9] == "tl"
    line = device_map.describe()
    assert "left_x shoulder_pan+" in line and "y stop" in line and "hold tl to move" in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mode: cartesian\n", "mode must be one of"),
        ("axes: {w: {target: x}}\n", "bad device map entry"),
        ("- a list\n", "is a YAML mapping"),
        ("mode: end_effector\naxes: {w: {target: shoulder_pan, scale: 1}}\n", "end_effector targets"),
        ("episode: {save: right}\n", "unknown episode actions"),
        ("timeout_s: 0\n", "timeout_s must be"),
        ("axes: [\n", "cannot read device map"),
    ],
)
def test_bad_maps_name_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "pad.yaml"
    path.write_text(text)
    with pytest.raises(TeleopError, match=expected) as err:
        load_device_map(path)
    assert str(path) in str(err.value)


def test_a_joint_map_for_another_robot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pad.yaml"
    path.write_text("axes: {w: {target: waist, scale: 1}}\n")
    with pytest.raises(TeleopError, match=r"\['waist'\] are not joints"):
        load_device_map(path).check_joints(["shoulder_pan", "gripper"], "pad")


def test_dead_zone_rescales_the_rest_of_the_throw() -> None:
    assert apply_deadzone(0.05, 0.1) == 0.0
    assert apply_deadzone(-0.1, 0.1) == 0.0
    assert apply_deadzone(1.0, 0.1) == pytest.approx(1.0)
    assert apply_deadzone(-0.55, 0.1) == pytest.approx(-0.5)
