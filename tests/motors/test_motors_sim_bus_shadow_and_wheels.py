"""Virtual bus: the X-series models of ViperX/WidowX, Secondary_ID shadow motors, and wheel (velocity) mode."""

from __future__ import annotations

import math
import time

import pytest

from apprentice.motors import DynamixelBus, FeetechBus, Motor, VirtualServoBus, model_spec
from apprentice.motors.sim_bus import SYNC_WRITE, WRITE


@pytest.mark.parametrize(("model", "number"), [("xm430-w350", 1020), ("xm540-w270", 1120), ("xc430-w150", 1070)])
def test_new_dynamixel_models_answer_with_their_model_numbers(model: str, number: int) -> None:
    with VirtualServoBus("dynamixel", {1: model}) as virtual:
        bus = DynamixelBus(virtual.port, {"j": Motor(1, model)})
        bus.connect()  # the handshake checks the model number
        assert bus.ping("j") == number
        assert bus.read("Secondary_ID", "j") == 255  # factory: no secondary id
        assert bus.read("Operating_Mode", "j") == 3
        bus.disconnect()
    assert 5 not in model_spec("xc430-w150").operating_modes  # no current sensor: no current-based modes


def test_a_shadow_executes_writes_to_its_primary_without_answering_and_mirrors_it() -> None:
    motors = {"shoulder": Motor(2, "xm540-w270"), "shoulder_shadow": Motor(3, "xm540-w270")}
    with VirtualServoBus("dynamixel", {2: "xm540-w270", 3: "xm540-w270"}, tau_s=0.01) as virtual:
        bus = DynamixelBus(virtual.port, motors)
        bus.connect()
        bus.write("Goal_Position", "shoulder", 2300, normalize=False)  # not linked yet: the shadow stays
        assert virtual.motor(3).get("Goal_Position") == 2048
        bus.write("Drive_Mode", "shoulder_shadow", 1, normalize=False)  # mounted facing the primary
        bus.write("Homing_Offset", "shoulder_shadow", 4096, normalize=False)  # both read 2048 at rest
        bus.write("Secondary_ID", "shoulder_shadow", 2, normalize=False)
        bus.enable_torque()
        before = virtual.motor(3).actual
        writes = virtual.instructions[WRITE]
        bus.write("Goal_Position", "shoulder", 2548, normalize=False)  # one status packet: the primary's
        assert virtual.instructions[WRITE] == writes + 1 and bus.health.retries == 0
        bus.sync_write("Goal_Position", {"shoulder": 2648}, normalize=False)  # one block, for id 2 only
        time.sleep(0.1)
        assert virtual.instructions[SYNC_WRITE] == 1
        positions = bus.sync_read("Present_Position", normalize=False)
        assert positions == {"shoulder": 2648, "shoulder_shadow": 2648}  # same joint angle in both frames
        assert virtual.motor(3).actual == pytest.approx(before - 600, abs=1)  # the shaft turned the other way
        bus.disconnect()


def test_feetech_wheel_mode_follows_goal_velocity() -> None:
    with VirtualServoBus("feetech", {7: "sts3215"}, tau_s=0.01) as virtual:
        bus = FeetechBus(virtual.port, {"wheel": Motor(7, "sts3215")})
        bus.connect()
        bus.write("Operating_Mode", "wheel", 1)
        bus.enable_torque()
        bus.write("Goal_Velocity", "wheel", -1000)  # sign-magnitude on the wire (bit 15)
        start = virtual.motor(7).actual
        time.sleep(0.2)
        assert bus.read("Present_Velocity", "wheel") == -1000
        assert bus.velocity_to_rad_s("wheel", -1000) == pytest.approx(-1000 * 2 * math.pi / 4095)
        travelled = virtual.motor(7).actual - start
        assert -1000 * 0.25 < travelled < -1000 * 0.15  # ~0.2 s at 1000 steps/s, less the 10 ms lag
        bus.write("Goal_Velocity", "wheel", 0)
        time.sleep(0.1)
        assert bus.read("Present_Velocity", "wheel") == 0
        bus.disconnect()
