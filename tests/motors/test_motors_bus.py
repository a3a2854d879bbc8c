"""Both vendor SDKs, unmodified, against the virtual servo bus on a real pseudo-terminal."""

from __future__ import annotations

import time
from pathlib import Path

import dynamixel_sdk
import pytest
import serial

from apprentice.motors import BusError, DynamixelBus, FeetechBus, Motor, MotorsBus, VirtualServoBus
from apprentice.motors.port import latency_timer_warning
from apprentice.motors.sim_bus import crc16

VENDORS = {
    "feetech": (FeetechBus, "sts3215"),
    "dynamixel": (DynamixelBus, "xl330-m288"),
}


@pytest.fixture(params=sorted(VENDORS))
def rig(request: pytest.FixtureRequest):
    vendor = request.param
    bus_class, model = VENDORS[vendor]
    with VirtualServoBus(vendor, {i: model for i in range(1, 7)}, tau_s=0.02) as virtual:
        bus = bus_class(virtual.port, {f"j{i}": Motor(i, model) for i in range(1, 7)}, num_retry=2)
        bus.connect()
        try:
            yield virtual, bus
        finally:
            bus.disconnect(disable_torque=False)


def wait_until(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_ping_scan_and_broadcast_ping(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    virtual, bus = rig
    model_number = virtual.motors[0].spec.model_number
    assert bus.ping("j3") == model_number
    assert bus.scan(range(0, 9)) == {i: model_number for i in range(1, 7)}
    assert bus.broadcast_ping() == {i: model_number for i in range(1, 7)}
    assert bus.ping(42) is None


def test_sync_write_moves_motors_and_sync_read_sees_it(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    virtual, bus = rig
    bus.configure()
    bus.enable_torque()
    goals = {f"j{i}": 1000 + 300 * i for i in range(1, 7)}
    bus.sync_write("Goal_Position", goals, normalize=False)
    assert wait_until(
        lambda: all(abs(v - goals[m]) <= 2 for m, v in bus.sync_read("Present_Position", normalize=False).items())
    )
    assert bus.sync_read("Goal_Position", normalize=False) == goals
    bus.disable_torque()
    assert all(m.get("Torque_Enable") == 0 for m in virtual.motors)


def test_registers_roundtrip_with_vendor_sign_encoding(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    virtual, bus = rig
    bus.disable_torque()
    bus.write("Homing_Offset", "j2", -1234, normalize=False)
    assert bus.read("Homing_Offset", "j2", normalize=False) == -1234
    spec = virtual.motor(2).spec
    address, size = spec.address("Homing_Offset")
    raw = int.from_bytes(virtual.motor(2).regs[address : address + size], "little")
    if spec.vendor == "feetech":
        assert raw == 1234 | (1 << 11)  # sign-magnitude, sign at bit 11
    else:
        assert raw == (1 << 32) - 1234  # two's complement, 4 bytes
    bus.write("Return_Delay_Time", "j2", 0, normalize=False)
    assert bus.read("Return_Delay_Time", "j2", normalize=False) == 0


def test_silent_motor_is_named_after_bounded_retries(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    virtual, bus = rig
    virtual.fault(4).silent = True
    with pytest.raises(BusError, match=r"motor 'j4' \(id 4\).*Present_Position.*3 tries"):
        bus.sync_read("Present_Position", normalize=False)
    with pytest.raises(BusError, match=r"motor 'j4' \(id 4\).*Torque_Enable"):
        bus.enable_torque(["j4"])
    assert bus.health.failures == 2
    virtual.fault(4).silent = False
    assert len(bus.sync_read("Present_Position", normalize=False)) == 6  # the bus recovers


def test_transient_drops_and_bad_checksums_are_retried(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    virtual, bus = rig
    virtual.fault(2).drop_next = 1
    assert bus.sync_read("Present_Position", normalize=False) == {f"j{i}": 2048 for i in range(1, 7)}
    assert bus.health.retries == 1
    virtual.fault(5).corrupt_next = 1
    assert bus.sync_read("Present_Position", normalize=False) == {f"j{i}": 2048 for i in range(1, 7)}
    assert bus.health.retries == 2 and bus.health.failures == 0
    virtual.fault(1).corrupt = True
    with pytest.raises(BusError, match=r"'j1'.*Incorrect status packet"):
        bus.read("Present_Position", "j1", normalize=False)


def test_delayed_replies_within_timeout_succeed(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    virtual, bus = rig
    virtual.fault(3).delay_s = 0.005
    assert bus.read("Present_Position", "j3", normalize=False) == 2048
    # Far beyond the status timeout of every try (3 x 250 ms on a pty): reported, never a stale value.
    virtual.fault(3).delay_s = 5.0
    with pytest.raises(BusError, match=r"'j3'.*3 tries"):
        bus.read("Present_Position", "j3", normalize=False)


def test_overload_alarm_is_reported_and_drops_torque(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    virtual, bus = rig
    bus.enable_torque()
    virtual.motor(6).set_overload(True)
    bus.sync_read("Present_Position", normalize=False)
    assert "j6" in bus.health.hardware_errors
    assert virtual.motor(6).get("Torque_Enable") == 0
    assert bus.read("Torque_Enable", "j6", normalize=False) == 0


def test_dynamixel_eeprom_is_write_protected_while_torque_is_on() -> None:
    with VirtualServoBus("dynamixel", {1: "xl430-w250"}) as virtual:
        bus = DynamixelBus(virtual.port, {"pan": Motor(1, "xl430-w250")})
        bus.connect()
        bus.enable_torque()
        with pytest.raises(BusError, match=r"'pan'.*Homing_Offset.*disable_torque"):
            bus.write("Homing_Offset", "pan", 10, normalize=False)
        bus.disable_torque()
        bus.write("Operating_Mode", "pan", 4, normalize=False)  # extended position: allowed on XL430
        with pytest.raises(BusError, match="out of range"):
            bus.write("Operating_Mode", "pan", 0, normalize=False)  # current control: XL430 has none
        bus.disconnect()


def test_a_motor_that_answers_a_moment_late_still_connects() -> None:
    """The connect check looks again at a silent motor (a servo booting after power-on) before it fails."""
    import threading

    with VirtualServoBus("feetech", {1: "sts3215", 2: "sts3215"}) as virtual:
        virtual.fault(2).silent = True
        wake = threading.Timer(0.15, lambda: setattr(virtual.fault(2), "silent", False))
        wake.start()
        bus = FeetechBus(virtual.port, {"a": Motor(1, "sts3215"), "b": Motor(2, "sts3215")}, num_retry=0)
        try:
            bus.connect()
            assert bus.is_connected and bus.ping("b") is not None
        finally:
            wake.cancel()
            bus.disconnect(disable_torque=False)


def test_wrong_model_or_missing_motor_fails_the_handshake() -> None:
    with VirtualServoBus("feetech", {1: "sts3215", 2: "sts3215"}) as virtual:
        bus = FeetechBus(virtual.port, {"a": Motor(1, "sts3215"), "c": Motor(3, "sts3215")}, num_retry=0)
        with pytest.raises(BusError, match=r"'c' \(id 3, sts3215\) does not answer"):
            bus.connect()
    with pytest.raises(BusError, match="cannot open servo port /nonexistent"):
        FeetechBus("/nonexistent/ttyUSB0", {"a": Motor(1, "sts3215")}).connect()
    with pytest.raises(BusError, match="dynamixel xl330-m288; it cannot sit on a feetech bus"):
        FeetechBus("/dev/null", {"a": Motor(1, "xl330-m288")})


def test_dynamixel_wire_bytes_match_the_protocol_manual() -> None:
    # ROBOTIS e-Manual Protocol 2.0 PING example: instruction ...19 4E, status ...65 5D for model 0x0406.
    assert crc16(bytes.fromhex("fffffd0001030001")) == 0x4E19
    assert crc16(bytes.fromhex("fffffd000107005500060426")) == 0x5D65
    sdk_crc = dynamixel_sdk.PacketHandler(2.0).updateCRC
    packet = bytes(range(40))
    assert crc16(packet) == sdk_crc(0, list(packet), len(packet))
    with VirtualServoBus("dynamixel", {1: "xl330-m077"}) as virtual:
        port = serial.Serial(virtual.port, 1_000_000, timeout=0.5)
        port.write(bytes.fromhex("fffffd0001030001194e"))
        reply = port.read(14)
        port.close()
    body = bytes.fromhex("fffffd000107005500") + (1190).to_bytes(2, "little") + bytes([52])
    assert reply == body + crc16(body).to_bytes(2, "little")


def test_feetech_wire_bytes_and_checksum() -> None:
    with VirtualServoBus("feetech", {1: "sts3215"}) as virtual:
        with serial.Serial(virtual.port, 1_000_000, timeout=0.5) as port:
            port.write(bytes([0xFF, 0xFF, 0x01, 0x04, 0x02, 0x03, 0x02, 0xF3]))  # READ Model_Number
            reply = port.read(8)
            assert reply == bytes([0xFF, 0xFF, 0x01, 0x04, 0x00, 0x09, 0x03, 0xEE])  # 777 = 0x0309
            port.write(bytes([0xFF, 0xFF, 0x01, 0x04, 0x02, 0x03, 0x02, 0x00]))  # bad checksum: ignored
            assert port.read(8) == b""
        assert virtual.rx_bad_checksum == 1


def test_usb_latency_timer_above_one_ms_gets_a_fix_it_message(tmp_path: Path) -> None:
    (tmp_path / "ttyUSB0").mkdir()
    (tmp_path / "ttyUSB0" / "latency_timer").write_text("16\n")
    message = latency_timer_warning("/dev/ttyUSB0", sysfs=tmp_path)
    assert message is not None and "16 ms" in message and "echo 1 | sudo tee" in message
    (tmp_path / "ttyUSB0" / "latency_timer").write_text("1\n")
    assert latency_timer_warning("/dev/ttyUSB0", sysfs=tmp_path) is None
    assert latency_timer_warning("/dev/ttyACM0", sysfs=tmp_path) is None  # CDC-ACM boards have none


def test_sync_read_many_reads_position_and_velocity_in_one_instruction(
    rig: tuple[VirtualServoBus, MotorsBus],
) -> None:
    from apprentice.motors.sim_bus import SYNC_READ

    virtual, bus = rig
    for motor in virtual.motors:
        motor.tau_s = 1.0  # still moving when read, even on a stalled machine
    bus.configure()
    bus.enable_torque()
    start = bus.sync_read("Present_Position", normalize=False)
    goals = {m: p + (600 if i % 2 else -600) for i, (m, p) in enumerate(start.items())}
    bus.sync_write("Goal_Position", goals, normalize=False)
    time.sleep(0.05)
    before = virtual.instructions[SYNC_READ]
    both = bus.sync_read_many(["Present_Position", "Present_Velocity"], normalize=False)
    assert virtual.instructions[SYNC_READ] == before + 1
    for i, m in enumerate(start):
        up = i % 2 == 1
        position, velocity = both["Present_Position"][m], both["Present_Velocity"][m]
        assert (start[m] < position <= goals[m]) if up else (goals[m] <= position < start[m]), (m, position)
        assert (velocity > 0) if up else (velocity < 0), (m, velocity)  # sign decoded per vendor
    for motor in virtual.motors:
        motor.tau_s = 0.01
    assert wait_until(lambda: all(v == 0 for v in bus.sync_read("Present_Velocity", normalize=False).values()))
    at_rest = bus.sync_read_many(["Present_Velocity", "Present_Position"], normalize=False)
    assert at_rest["Present_Position"] == bus.sync_read("Present_Position", normalize=False)
    assert set(at_rest["Present_Velocity"].values()) == {0}


def test_sync_read_many_refuses_a_span_wider_than_a_tick_should_carry(rig: tuple[VirtualServoBus, MotorsBus]) -> None:
    _, bus = rig
    with pytest.raises(BusError, match="span"):
        bus.sync_read_many(["ID", "Present_Position"])
    with pytest.raises(BusError, match="no registers"):
        bus.sync_read_many([])
