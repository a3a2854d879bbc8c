"""EndEffectorController: commanded deltas move the end effector, on the math and on a virtual servo arm;
workspace clamping, step bounds, max_relative_target, the gripper, and config validation."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from apprentice.robots import Arm, load_robot
from apprentice.robots.virtual_arm import make_virtual_arm
from apprentice.teleop import (
    EndEffectorConfig,
    EndEffectorController,
    EndEffectorDelta,
    TeleopError,
    WorkspaceBounds,
    load_kinematics,
)

START = np.array([0.2, -0.5, 0.5, 0.3, 0.1, 0.5])  # so101 joints incl. gripper: well inside the box


def controller(robot: str = "so101_follower", **config: object) -> EndEffectorController:
    definition = load_robot(robot)
    base = EndEffectorController(definition=definition).config
    return EndEffectorController(definition=definition, config=dataclasses.replace(base, **config))


def position(c: EndEffectorController, q: np.ndarray) -> np.ndarray:
    return c.kinematics.fk(q[:5])[:3, 3]


@pytest.mark.parametrize("robot", ["so101_follower", "so100_follower", "koch_follower"])
def test_steps_move_the_end_effector_by_the_commanded_delta(robot: str) -> None:
    c = controller(robot)
    k = c.kinematics
    q = START.copy()
    q[5] = 0.0
    if robot == "koch_follower":
        q[:5] = [0.1, 0.5, -0.5, 0.3, 0.0]
    before = position(c, q)
    delta = EndEffectorDelta(x=-0.002, y=0.0015, z=0.001)
    for _ in range(20):
        q = c.step(delta, q)  # the measured state follows the target exactly here
        assert c.last_report.reached and not c.last_report.clamped_to_workspace
        assert np.all(q[:5] >= k.lower) and np.all(q[:5] <= k.upper)
    np.testing.assert_allclose(position(c, q) - before, [-0.04, 0.03, 0.02], atol=1e-4)


def test_controller_drives_a_virtual_arm_by_the_commanded_delta() -> None:
    definition = load_robot("so101_follower")
    with make_virtual_arm(definition, tau_s=0.01) as virtual:
        arm = Arm(definition, virtual.port, num_retry=1)
        arm.connect()
        try:
            settle(arm, START, arm.send_positions(START))
            c = EndEffectorController(definition=definition)
            before_q = arm.read_positions()
            before = position(c, before_q)
            delta = EndEffectorDelta(x=-0.003, y=0.002, z=0.002, gripper=1.0)
            for _ in range(15):
                target = c.step(delta, arm.read_positions())
                sent = arm.send_positions(target)
                time.sleep(0.01)
            after_q = settle(arm, target, sent)
            moved = position(c, after_q) - before
            # 12 bit servos: a tick is 1.5 mrad, a few tenths of a millimetre at this reach.
            np.testing.assert_allclose(moved, [-0.045, 0.03, 0.03], atol=2e-3)
            assert after_q[5] - before_q[5] == pytest.approx(15 * c.config.gripper_step, abs=0.01)  # opened
        finally:
            arm.disconnect()


def settle(arm: Arm, target: np.ndarray, sent: np.ndarray, timeout: float = 3.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        present = arm.read_positions()
        if np.allclose(present, sent, atol=0.004):
            return present
        time.sleep(0.01)
    raise AssertionError(f"arm did not reach {sent.tolist()} (asked {target.tolist()}): at {present.tolist()}")


def test_targets_are_clamped_to_the_workspace_box() -> None:
    box = WorkspaceBounds((0.1, -0.3, 0.02), (0.34, 0.3, 0.38))
    c = controller(workspace=box)
    q = START.copy()
    start = position(c, q)
    assert box.contains(start)
    for _ in range(40):
        q = c.step(EndEffectorDelta(x=0.01), q)
    assert c.last_report.clamped_to_workspace
    assert position(c, q)[0] == pytest.approx(0.34, abs=1e-4)  # stopped at the wall, not beyond
    np.testing.assert_allclose(position(c, q)[1:], start[1:], atol=1e-3)
    # A start outside the box does not jump to the wall: it may stay, and only moves back inward.
    outside = controller(workspace=WorkspaceBounds((0.1, -0.3, 0.02), (0.25, 0.3, 0.38)))
    x0 = position(outside, START)[0]
    assert x0 > 0.25
    held = outside.step(EndEffectorDelta(x=0.01), START)
    assert position(outside, held)[0] == pytest.approx(x0, abs=1e-4)
    inward = outside.step(EndEffectorDelta(x=-0.01), held)
    assert position(outside, inward)[0] == pytest.approx(x0 - 0.01, abs=1e-4)


def test_one_step_is_bounded_and_joints_respect_max_relative_target() -> None:
    c = controller(max_step_m=0.01)
    q = START.copy()
    moved = position(c, c.step(EndEffectorDelta(x=-0.5), q)) - position(c, q)
    assert np.linalg.norm(moved) == pytest.approx(0.01, abs=1e-4)  # a 0.5 m request becomes 1 cm

    definition = dataclasses.replace(load_robot("so101_follower"), max_relative_target=0.01)
    limited = EndEffectorController(definition=definition)
    target = limited.step(EndEffectorDelta(x=-0.02, z=0.02), START)
    assert np.all(np.abs(target - START) <= 0.01 + 1e-12)
    assert limited.last_report.limited_by_max_relative_target
    per_joint = EndEffectorController(
        definition=load_robot("so101_follower"), max_relative_target={"elbow_flex": 0.001}
    )
    target = per_joint.step(EndEffectorDelta(x=-0.02, z=0.02), START)
    assert abs(target[2] - START[2]) <= 0.001 + 1e-12


def test_gripper_opens_closes_and_stays_in_its_range() -> None:
    c = controller()
    lo, hi = c.gripper_limits
    q = START.copy()
    opened = c.step(EndEffectorDelta(gripper=1.0), q)
    assert opened[5] == pytest.approx(q[5] + c.config.gripper_step)
    held = c.step(EndEffectorDelta(), opened)
    assert held[5] == pytest.approx(opened[5])
    for _ in range(100):
        q = c.step(EndEffectorDelta(gripper=1.0), q)
    assert q[5] == pytest.approx(hi)
    for _ in range(100):
        q = c.step(EndEffectorDelta(gripper=-1.0), q)
    assert q[5] == pytest.approx(lo)
    # Chain joints plus the measured gripper separately, as a device holding the gripper state passes it.
    split = controller().step(EndEffectorDelta(gripper=-1.0), START[:5], gripper=0.3)
    assert split.shape == (6,) and split[5] == pytest.approx(0.3 - c.config.gripper_step)


def test_the_last_target_is_the_reference_until_the_arm_is_far_from_it() -> None:
    c = controller()
    target = c.step(EndEffectorDelta(), START)
    sagged = START.copy()
    sagged[1] += 0.02  # gravity pulls the shoulder a little: the hold target must not follow it down
    np.testing.assert_allclose(c.step(EndEffectorDelta(), sagged), target, atol=1e-9)
    pushed = START.copy()
    pushed[0] += 0.4  # someone swung the arm aside (far beyond rebase_distance_m): rebuild on the arm
    np.testing.assert_allclose(position(c, c.step(EndEffectorDelta(), pushed)), position(c, pushed), atol=1e-5)
    measured = controller(reference="measured")
    measured.step(EndEffectorDelta(), START)
    np.testing.assert_allclose(
        position(measured, measured.step(EndEffectorDelta(), sagged)), position(c, sagged), atol=1e-5
    )


def test_deltas_configs_and_inputs_are_validated() -> None:
    with pytest.raises(TeleopError, match="gripper must be in"):
        EndEffectorDelta(gripper=2.0)
    with pytest.raises(TeleopError, match="finite"):
        EndEffectorDelta(x=math.nan)
    steps = {"x": 0.004, "yaw": 0.05}
    assert EndEffectorDelta.from_unit({"x": -1.0, "yaw": 0.5, "gripper": 1}, steps) == EndEffectorDelta(
        x=-0.004, yaw=0.025, gripper=1.0
    )
    with pytest.raises(TeleopError, match="unknown end-effector axes"):
        EndEffectorDelta.from_unit({"w": 1.0}, steps)
    with pytest.raises(TeleopError, match="exceeds max"):
        WorkspaceBounds((0.3, 0, 0), (0.1, 1, 1))
    with pytest.raises(TeleopError, match="unknown end_effector field"):
        EndEffectorConfig.from_dict({"workspce": {}}, "so101.yaml")
    with pytest.raises(TeleopError, match="workspace must be"):
        EndEffectorConfig.from_dict({"workspace": [0, 1]}, "so101.yaml")
    with pytest.raises(TeleopError, match="max_step_m must be a positive"):
        EndEffectorConfig(max_step_m=0.0)
    c = controller()
    with pytest.raises(TeleopError, match="measured_q must hold 6 radians"):
        c.step(EndEffectorDelta(), np.zeros(3))
    with pytest.raises(TeleopError, match="gripper position is missing"):
        c.step(EndEffectorDelta(), np.zeros(5))


def test_every_shipped_config_loads_into_a_controller() -> None:
    for arm in ("so100", "so101", "koch", "omx"):
        k = load_kinematics(arm)
        c = EndEffectorController(k)  # no robot YAML needed: chain joints + gripper
        assert c.joint_names[-1] == "gripper" and c.config.workspace.contains(c.config.workspace.clamp(np.zeros(3)))
        q = c.step(EndEffectorDelta(z=0.001), np.zeros(5), gripper=0.0)
        assert q.shape == (6,) and np.all(np.isfinite(q))
