"""Motor setup, as LeRobot's `lerobot-setup-motors`: find a motor's baud rate and id, give it its own.

New servos all leave the factory as id 1 (and Dynamixel X at 57600 baud), so each motor is set up alone on
the bus before the arm is daisy-chained: `setup_motor` finds it at any supported rate, then writes the id
from the robot definition and the bus's baud rate into its EEPROM.
"""

from __future__ import annotations

from collections.abc import Iterable

from apprentice.motors.bus import MotorsBus
from apprentice.motors.errors import BusError
from apprentice.motors.tables import ModelSpec

# Where new motors are found first: the factory rate, then the usual LeRobot bus rate.
FACTORY_BAUDRATES = {"feetech": 1_000_000, "dynamixel": 57_600}


def scan_port(bus: MotorsBus, baudrates: Iterable[int] | None = None) -> dict[int, dict[int, int]]:
    """baud rate -> {id: model number} of the motors answering a broadcast PING at that rate.

    `bus` must be connected (handshake=False); its baud rate is restored afterwards.
    """
    rates = list(baudrates) if baudrates is not None else _candidate_rates(bus)
    found, original = {}, bus.baudrate
    try:
        for rate in rates:
            bus.set_baudrate(rate)
            motors = bus.broadcast_ping()
            if motors:
                found[rate] = motors
    finally:
        bus.set_baudrate(original)
    return found


def setup_motor(bus: MotorsBus, motor: str) -> tuple[int, int]:
    """Give the only motor on the bus the id of `motor` and the bus's baud rate; return where it was found
    as (baud rate, id). `bus` is connected with handshake=False; exactly one motor must be plugged in."""
    target_id, target_rate = bus.motors[motor].id, bus.baudrate
    spec = bus.spec(motor)
    for rate in _candidate_rates(bus):
        found = scan_port(bus, [rate]).get(rate, {})
        if not found:
            continue
        if len(found) > 1:
            raise BusError(
                f"{len(found)} motors answer on {bus.port} at {rate} baud (ids {sorted(found)}); "
                f"connect only the '{motor}' motor to set it up"
            )
        ((found_id, model_number),) = found.items()
        if model_number != spec.model_number:
            raise BusError(
                f"the motor on {bus.port} (id {found_id}, {rate} baud) is model number {model_number}; "
                f"'{motor}' must be a {spec.name} ({spec.model_number})"
            )
        bus.set_baudrate(rate)
        try:
            _write_raw(bus, found_id, "Torque_Enable", 0, spec)
            if "Lock" in spec.table:  # Feetech: EPROM writes need the lock released
                _write_raw(bus, found_id, "Lock", 0, spec)
            _write_raw(bus, found_id, "ID", target_id, spec)
            _write_raw(bus, target_id, "Baud_Rate", spec.baud_rates[target_rate], spec)
        finally:
            bus.set_baudrate(target_rate)
        if bus.ping(motor) != spec.model_number:
            raise BusError(f"'{motor}' does not answer as id {target_id} at {target_rate} baud after setup; retry")
        return rate, found_id
    raise BusError(
        f"no motor answers on {bus.port} at any of {_candidate_rates(bus)} baud: check power and "
        f"that only the '{motor}' motor is connected"
    )


def _candidate_rates(bus: MotorsBus) -> list[int]:
    supported = sorted({rate for m in bus.motors for rate in bus.spec(m).baud_rates}, reverse=True)
    first = [FACTORY_BAUDRATES[bus.vendor], bus.baudrate]
    return list(dict.fromkeys([r for r in first if r in supported] + supported))


def _write_raw(bus: MotorsBus, motor_id: int, register: str, value: int, spec: ModelSpec) -> None:
    """Write a register of a motor addressed by id (it is not yet where the bus's table expects it)."""
    address, size = spec.address(register)
    with bus._port():
        comm, error = bus.packet_handler.writeTxRx(
            bus.port_handler, motor_id, address, size, list(int(value).to_bytes(size, "little"))
        )
    if comm != bus.sdk.COMM_SUCCESS or error & 0x7F:
        raise BusError(
            f"writing {register}={value} to the motor with id {motor_id} on {bus.port} failed: "
            f"{bus.packet_handler.getTxRxResult(comm)} {bus.packet_handler.getRxPacketError(error)}"
        )
