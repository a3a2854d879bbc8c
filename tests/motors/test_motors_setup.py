"""Motor setup through the real SDKs: find a factory-fresh motor at its baud rate, give it id and rate."""

from __future__ import annotations

import pytest

from apprentice.motors import BusError, DynamixelBus, FeetechBus, Motor, VirtualServoBus
from apprentice.motors.setup import scan_port, setup_motor


def test_factory_dynamixel_gets_its_id_and_the_bus_baud_rate() -> None:
    with VirtualServoBus("dynamixel", {1: "xl330-m288"}, baudrate=None) as virtual:  # factory: id 1, 57600
        bus = DynamixelBus(virtual.port, {"gripper": Motor(6, "xl330-m288")}, num_retry=0)
        bus.connect(handshake=False)
        assert bus.ping("gripper") is None and bus.ping(1) is None  # deaf at 1 Mbaud
        assert setup_motor(bus, "gripper") == (57_600, 1)
        assert bus.ping("gripper") == 1200
        assert virtual.motors[0].get("ID") == 6 and virtual.motors[0].get("Baud_Rate") == 3  # 3 = 1 Mbaud
        bus.disconnect(disable_torque=False)


def test_scan_port_finds_motors_at_each_rate_and_setup_refuses_two() -> None:
    with VirtualServoBus("feetech", {1: "sts3215", 2: "sts3215"}) as virtual:
        virtual.motor(2).regs[6] = 1  # Baud_Rate code 1 = 500 kbaud
        bus = FeetechBus(virtual.port, {"a": Motor(1, "sts3215")}, num_retry=0)
        bus.connect(handshake=False)
        assert scan_port(bus) == {1_000_000: {1: 777}, 500_000: {2: 777}}
        assert bus.baudrate == 1_000_000 and bus.ping("a") == 777  # rate restored
        virtual.motor(2).regs[6] = 0
        with pytest.raises(BusError, match=r"2 motors answer .* connect only the 'a' motor"):
            setup_motor(bus, "a")
        bus.disconnect(disable_torque=False)
