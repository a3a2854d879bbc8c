"""DeviceSource: velocity and position inputs to joint targets; dead-man, timeout, loss, clamping."""

from __future__ import annotations

import numpy as np
import pytest

from apprentice.teleop import DeviceMap, DeviceSource, InputState, TeleopError
from apprentice.teleop.mapping import AxisBinding

JOINTS = ["pan", "lift", "gripper"]


class Device:
    """The device side of a source is only its InputState (filled by real devices' threads)."""

    def __init__(self) -> None:
        self.name = "test pad"
        self.state = InputState()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def make(device_map: DeviceMap, **kwargs: object) -> tuple[Device, DeviceSource]:
    device = Device()
    source = DeviceSource(device, device_map, JOINTS, gripper_joint="gripper", **kwargs)
    source.observe(np.zeros(3))
    return device, source


def pad_map(**kwargs: object) -> DeviceMap:
    axes = [AxisBinding("stick", "pan", 1.0, deadzone=0.1), AxisBinding("up", "lift", 0.5)]
    return DeviceMap(axes=axes, gripper_open="b", gripper_close="a", gripper_speed=2.0, **kwargs)


def test_velocity_inputs_integrate_over_ticks() -> None:
    device, source = make(pad_map())
    device.state.set_axis("stick", 1.0, now=0.0)
    device.state.set_button("up", True, now=0.0)
    assert np.allclose(source.read(now=0.0), [0, 0, 0])  # first tick: no dt yet
    for i in range(1, 11):
        device.state.alive(now=i * 0.01)
        target = source.read(now=i * 0.01)
    assert np.allclose(target, [0.1, 0.05, 0.0])  # 1 rad/s and 0.5 rad/s for 0.1 s


def test_dead_zone_gripper_and_joint_limits() -> None:
    device, source = make(pad_map(), lower=np.array([-1, -1, 0.0]), upper=np.array([1, 1, 0.05]))
    device.state.set_axis("stick", 0.08, now=0.0)  # inside the dead-zone: no drift
    device.state.set_button("b", True, now=0.0)  # gripper opens at 2 rad/s, up to its upper limit
    for i in range(6):
        device.state.alive(now=i * 0.01)
        target = source.read(now=i * 0.01)
    assert target[0] == 0.0
    assert target[2] == pytest.approx(0.05)  # would be 0.1 without the limit


def test_dead_man_released_holds_and_re_engages_from_the_measured_pose() -> None:
    device, source = make(pad_map(deadman="tl"))
    device.state.set_axis("stick", 1.0, now=0.0)
    assert source.read(now=0.0) is None and "dead-man 'tl' released" in source.hold_reason
    device.state.set_button("tl", True, now=0.0)
    source.read(now=0.0)
    assert source.read(now=0.05)[0] == pytest.approx(0.05)
    device.state.set_button("tl", False, now=0.06)
    assert source.read(now=0.06) is None and not source.engaged
    source.observe(np.array([0.3, 0.0, 0.0]))  # the arm is somewhere else when motion comes back
    device.state.set_button("tl", True, now=0.07)
    assert source.read(now=0.07)[0] == pytest.approx(0.3)


def test_a_silent_or_lost_device_holds() -> None:
    device, source = make(pad_map())
    device.state.set_axis("stick", 1.0, now=0.0)
    source.read(now=0.0)
    assert source.read(now=0.4) is not None  # within timeout_s (0.5)
    assert source.read(now=0.6) is None and "silent" in source.hold_reason
    device.state.alive(now=0.7)
    assert source.read(now=0.7) is not None
    device.state.lost()
    assert source.read(now=0.71) is None and source.hold_reason == "test pad lost"


def test_no_motion_before_the_follower_is_measured() -> None:
    device = Device()
    source = DeviceSource(device, pad_map(), JOINTS)
    device.state.alive(now=0.0)
    assert source.read(now=0.0) is None and "joint_states" in source.hold_reason


def test_max_relative_target_keeps_targets_near_the_measured_joints() -> None:
    device, source = make(pad_map(), max_relative_target=0.02)
    device.state.set_axis("stick", 1.0, now=0.0)
    for i in range(20):  # the arm does not follow (stalled): the target must not wind up
        device.state.alive(now=i * 0.01)
        target = source.read(now=i * 0.01)
    assert target[0] == pytest.approx(0.02)


def test_position_inputs_move_by_the_change_since_engaging() -> None:
    device_map = DeviceMap(axes=[AxisBinding("alpha", "pan", 1.0), AxisBinding("beta", "lift", -0.5)], deadman="hold")
    device, source = make(device_map)
    device.state.set_positions({"alpha": 6.2, "beta": 0.0}, now=0.0)  # heading before the dead-man: not a motion
    device.state.set_button("hold", True, now=0.0)
    assert np.allclose(source.read(now=0.0), 0)
    turn = 0.1 + 2 * np.pi - 6.2  # the compass heading wraps from 6.2 rad through 0 to 0.1 rad
    device.state.set_positions({"alpha": 0.1, "beta": 0.4}, now=0.01)
    assert np.allclose(source.read(now=0.01), [turn, -0.2, 0.0])
    assert np.allclose(source.read(now=0.02), [turn, -0.2, 0.0])  # held still: stays


def test_episode_presses_and_intervention() -> None:
    device, source = make(pad_map(episode={"stop": "y", "rerecord": "x"}, intervention="tr"))
    device.state.set_button("y", True)
    device.state.set_button("y", False)
    device.state.set_button("x", True)
    device.state.set_button("tr", True)
    source.read()
    assert source.pop_episode_requests() == ["stop", "rerecord"] and source.pop_episode_requests() == []
    assert source.intervention
    device.state.set_button("tr", False)
    source.read()
    assert not source.intervention


def test_toggle_intervention() -> None:
    device, source = make(pad_map(intervention="space", intervention_mode="toggle"))
    for expected in (True, False):
        device.state.tap("space", 0.1)
        source.read()
        assert source.intervention is expected


def test_end_effector_mode_needs_a_controller() -> None:
    with pytest.raises(TeleopError, match="needs the end-effector controller"):
        DeviceSource(Device(), DeviceMap(mode="end_effector", axes=[AxisBinding("w", "x", 0.05)]), JOINTS)
