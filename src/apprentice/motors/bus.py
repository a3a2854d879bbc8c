"""A servo bus over a vendor SDK: ping/scan, read/write by register name, group sync read/write, torque,
calibration — with bounded retries and errors that name the port, motor and register.

`FeetechBus` (scservo_sdk, STS3215) and `DynamixelBus` (dynamixel_sdk, Protocol 2.0, X series) differ only
in a handful of facts (sign encoding, homing direction, torque lock, drive-mode register), kept as small
overrides in feetech.py and dynamixel.py.
The SDKs build and parse every packet unmodified; port.py says how they open a pseudo-terminal.
"""

from __future__ import annotations

import termios
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from apprentice.motors.calibration import MotorCalibration, MotorNormMode, normalize, unnormalize
from apprentice.motors.errors import BusError
from apprentice.motors.port import default_timeout_ms
from apprentice.motors.tables import ModelSpec, model_spec

NORMALIZED_REGISTERS = ("Goal_Position", "Present_Position")
# One SYNC_READ may span several registers, but every byte of the span is in every motor's reply: past
# this, bytes nobody asked for cost more bus time than a second transaction would.
MAX_SYNC_READ_SPAN = 32


CHECK_ROUNDS = 2  # extra pings of a motor that did not answer at connect
CHECK_PAUSE_S = 0.3


@dataclass(frozen=True)
class Motor:
    id: int
    model: str
    norm_mode: MotorNormMode = MotorNormMode.DEGREES


@dataclass
class BusHealth:
    """Counters the driver reports on `diagnostics`."""
    transactions: int = 0
    retries: int = 0
    failures: int = 0
    last_error: str = ""
    hardware_errors: dict[str, int] = field(default_factory=dict)  # motor -> last non-zero error byte


class MotorsBus:
    """Motors sharing one serial port. Use as a context manager or call connect()/disconnect()."""
    vendor = ""
    default_baudrate = 1_000_000
    apply_drive_mode = False
    sdk: ModuleType
    port_handler_class: type  # WaitingReads + the SDK's PortHandler

    def __init__(self, port: str, motors: dict[str, Motor], calibration: dict[str, MotorCalibration] | None = None,
                 *, baudrate: int | None = None, num_retry: int = 3, timeout_ms: float | None = None) -> None:
        self.port = port
        self.timeout_ms = default_timeout_ms(port) if timeout_ms is None else timeout_ms
        self.motors = dict(motors)
        self.calibration = dict(calibration or {})
        self.baudrate = baudrate or self.default_baudrate
        self.num_retry = num_retry
        self.health = BusHealth()
        self._specs: dict[str, ModelSpec] = {name: model_spec(m.model) for name, m in self.motors.items()}
        for name, spec in self._specs.items():
            if spec.vendor != self.vendor:
                raise BusError(f"motor '{name}' is a {spec.vendor} {spec.name}; it cannot sit on a {self.vendor} bus")
        ids = [m.id for m in self.motors.values()]
        if len(ids) != len(set(ids)):
            raise BusError(f"motor ids on {port} must be unique, got {ids}")
        self._name_by_id = {m.id: name for name, m in self.motors.items()}
        self._lock = threading.RLock()
        self.port_handler: Any = None
        self.packet_handler: Any = None
        self._readers: dict[tuple[int, int, tuple[int, ...]], Any] = {}

    def _make_packet_handler(self) -> Any:
        raise NotImplementedError

    def _half_turn_homing(self, raw_position: int, spec: ModelSpec) -> int:
        raise NotImplementedError

    def velocity_to_rad_s(self, motor: str, raw: int) -> float:
        """A decoded Present_Velocity register value in radians per second (the unit is the vendor's)."""
        raise NotImplementedError

    def rad_s_to_velocity(self, motor: str, rad_s: float) -> int:
        raise NotImplementedError

    def _set_torque(self, motor: str, enabled: bool) -> None:
        self.write("Torque_Enable", motor, int(enabled))

    def broadcast_ping(self) -> dict[int, int]:
        raise NotImplementedError

    def set_baudrate(self, baudrate: int) -> None:
        """Change the port's baud rate (the motors keep theirs: see setup.py to change a motor's)."""
        with self._port():
            if not self.port_handler.setBaudRate(baudrate):
                raise BusError(f"{self.vendor} SDK cannot set {self.port} to {baudrate} baud")
        self.baudrate = baudrate

    @property
    def is_connected(self) -> bool:
        return self.port_handler is not None and bool(self.port_handler.is_open)

    def connect(self, handshake: bool = True) -> None:
        """Open the port; with `handshake`, check every motor answers with the expected model number."""
        if self.is_connected:
            return
        self.port_handler = self.port_handler_class(self.port)
        self.port_handler.min_timeout_ms = self.timeout_ms
        self.packet_handler = self._make_packet_handler()
        try:
            opened = self.port_handler.openPort() and self.port_handler.setBaudRate(self.baudrate)
        except OSError as exc:  # serial.SerialException is an OSError
            self.port_handler = None
            raise BusError(f"cannot open servo port {self.port}: {exc}. Check the path (ls /dev/serial/by-id/) "
                           "and that you are in the dialout group.") from None
        if not opened:
            self.port_handler = None
            raise BusError(f"cannot open servo port {self.port} at {self.baudrate} baud (unsupported rate?)")
        if handshake:
            self._check_motors()

    def _check_motors(self) -> None:
        problems = []
        for name, motor in self.motors.items():
            found = self.ping(motor.id)
            # A silent motor gets CHECK_ROUNDS more looks, CHECK_PAUSE_S apart, before the connect fails: a
            # servo that was just powered boots for a moment, and on a loaded 2-core machine a launch of 12
            # processes once left an in-process virtual bus unscheduled past one ping's retries.
            for _ in range(CHECK_ROUNDS):
                if found is not None:
                    break
                time.sleep(CHECK_PAUSE_S)
                found = self.ping(motor.id)
            expected = self._specs[name].model_number
            if found is None:
                problems.append(f"'{name}' (id {motor.id}, {motor.model}) does not answer")
            elif found != expected:
                problems.append(f"'{name}' (id {motor.id}) reports model number {found}, expected {expected}")
        if problems:
            self.disconnect(disable_torque=False)
            raise BusError(f"motor check failed on {self.port}: " + "; ".join(problems)
                           + ". Check power, cabling and motor ids (apprentice calibrate --help).")

    def disconnect(self, disable_torque: bool = True) -> None:
        if not self.is_connected:
            return
        try:
            if disable_torque:
                # A transaction cut short (Ctrl-C) leaves the port flagged busy and bytes in flight: clear both.
                with self._port():
                    self.port_handler.ser.reset_input_buffer()
                    self.port_handler.is_using = False
                self.disable_torque()
        finally:
            with suppress(OSError, termios.error):  # already gone (unplugged): nothing left to close
                self.port_handler.closePort()
            self.port_handler = None
            self._readers.clear()

    def __enter__(self) -> MotorsBus:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @contextmanager
    def _port(self) -> Iterator[None]:
        """Hold the bus and turn OS-level port failures (USB unplugged, pty closed) into a BusError."""
        with self._lock:
            if not self.is_connected:
                raise BusError(f"servo port {self.port} is not open; call connect() first")
            try:
                yield
            except (OSError, termios.error) as exc:  # serial.SerialException is an OSError
                self.port_handler.is_using = False
                self._fail(f"servo port {self.port} failed: {exc}. Is the USB cable still plugged in?")

    def ping(self, motor: str | int) -> int | None:
        """Model number of the motor, or None when nothing answers (after the bounded retries)."""
        motor_id = self.motors[motor].id if isinstance(motor, str) else motor
        with self._port():
            model_number, comm, _ = self._retry(
                lambda: self._exchange(lambda: self.packet_handler.ping(self.port_handler, motor_id))
            )
        return int(model_number) if comm == self.sdk.COMM_SUCCESS else None

    def scan(self, ids: Iterable[int] = range(0, 253)) -> dict[int, int]:
        """id -> model number of every motor that answers a ping among `ids` (no retries)."""
        found = {}
        with self._port():
            ph, port = self.packet_handler, self.port_handler
            for motor_id in ids:
                model_number, comm, _ = self._exchange(lambda i=motor_id: ph.ping(port, i))
                if comm == self.sdk.COMM_SUCCESS:
                    found[motor_id] = int(model_number)
        return found

    def read(self, register: str, motor: str, *, normalize: bool = True) -> int | float:
        """One register of one motor (status packet checked); normalized per calibration for positions."""
        spec, motor_id = self._specs[motor], self.motors[motor].id
        address, size = spec.address(register)
        ph, port = self.packet_handler, self.port_handler
        data = self._transact(motor, register, lambda: ph.readTxRx(port, motor_id, address, size))
        value = spec.decode(register, int.from_bytes(bytes(data[:size]), "little"))
        return self._to_user(register, motor, value) if normalize else value

    def write(self, register: str, motor: str, value: int | float, *, normalize: bool = True) -> None:
        """Write one register and wait for the motor's status packet (use sync_write in control loops)."""
        spec, motor_id = self._specs[motor], self.motors[motor].id
        address, size = spec.address(register)
        raw = self._to_raw(register, motor, value) if normalize else int(value)
        payload = list(spec.encode(register, raw).to_bytes(size, "little"))
        ph, port = self.packet_handler, self.port_handler
        self._transact(motor, register, lambda: (None, *ph.writeTxRx(port, motor_id, address, size, payload)))

    def _transact(self, motor: str, register: str, call: Any) -> Any:
        """Run one instruction/status exchange with bounded retries; raise naming motor and register."""
        with self._port():
            data, comm, error = self._retry(lambda: self._exchange(call))
            if comm != self.sdk.COMM_SUCCESS:
                self._fail_comm(motor, register, comm)
            self._check_status(motor, register, error)
        return data

    def _retry(self, attempt: Any) -> tuple[Any, int, Any]:
        """Call `attempt` (-> (payload, comm, extra)) until it succeeds, at most 1 + num_retry times."""
        for n in range(1 + self.num_retry):
            self.health.transactions += 1
            result = attempt()
            if result[1] == self.sdk.COMM_SUCCESS:
                break
            self.health.retries += n < self.num_retry
        return result

    def _fail_comm(self, motor: str, what: str, comm: int) -> None:
        self._fail(f"motor '{motor}' (id {self.motors[motor].id}) on {self.port}: {what} failed after "
                   f"{1 + self.num_retry} tries: {self.packet_handler.getTxRxResult(comm)} "
                   "Check the motor's power and cable.")

    def _exchange(self, call: Any) -> tuple[Any, int, int]:
        """One instruction/status exchange. Stale bytes of an earlier, timed-out reply are dropped first
        (scservo_sdk's clearPort only drains output), and a reply too short for what the SDK expects (a
        late answer to another instruction) counts as corrupt instead of crashing inside the SDK."""
        self.port_handler.ser.reset_input_buffer()
        try:
            return call()
        except IndexError:
            self.port_handler.is_using = False
            return None, self.sdk.COMM_RX_CORRUPT, 0

    def _check_status(self, motor: str, register: str, error: int) -> None:
        """Hardware alarms (overload, overheat, voltage) are recorded; instruction errors raise."""
        if not error:
            self.health.hardware_errors.pop(motor, None)
            return
        self.health.hardware_errors[motor] = error
        hint = self._instruction_error_hint(register, error)
        if hint is not None:
            self._fail(f"motor '{motor}' (id {self.motors[motor].id}) rejected {register}: "
                       f"{self.packet_handler.getRxPacketError(error)} {hint}")

    def _instruction_error_hint(self, register: str, error: int) -> str | None:
        """None when `error` holds only hardware alarms; else what to do about the rejected instruction."""
        return None

    def _fail(self, message: str) -> None:
        self.health.failures += 1
        self.health.last_error = message
        raise BusError(message)

    def sync_read(self, register: str, motors: Iterable[str] | None = None, *,
                  normalize: bool = True) -> dict[str, int | float]:
        """One register of many motors in one SYNC_READ instruction; each status packet is checked."""
        return self.sync_read_many([register], motors, normalize=normalize)[register]

    def sync_read_many(self, registers: Sequence[str], motors: Iterable[str] | None = None, *,
                       normalize: bool = True) -> dict[str, dict[str, int | float]]:
        """Several registers of many motors in ONE SYNC_READ of the block that spans them.

        For registers that sit close together (Present_Position + Present_Velocity: 4 bytes on Feetech,
        8 on Dynamixel) one transaction costs about what one register does, where one per register
        would double the bus time of a control tick.
        """
        names = list(self.motors) if motors is None else list(motors)
        if not registers:
            raise BusError("sync_read_many: no registers given")
        placed = {r: self._common_address(r, names) for r in registers}
        start = min(a for a, _ in placed.values())
        span = max(a + n for a, n in placed.values()) - start
        if span > MAX_SYNC_READ_SPAN:
            raise BusError(f"{list(registers)} span {span} bytes (more than {MAX_SYNC_READ_SPAN}); read them "
                           "in separate sync reads")
        what = "+".join(registers)
        ids = tuple(self.motors[n].id for n in names)
        key = (start, span, ids)
        with self._port():
            reader = self._readers.get(key)
            if reader is None:
                reader = self.sdk.GroupSyncRead(self.port_handler, self.packet_handler, start, span)
                for motor_id in ids:
                    reader.addParam(motor_id)
                self._readers[key] = reader
            values: dict[str, dict[str, int | float]] = {r: {} for r in registers}
            raw, comm, failed_id = self._retry(lambda: self._sync_read_once(reader, ids, span))
            if comm != self.sdk.COMM_SUCCESS:
                self._fail_comm(self._name_by_id[failed_id], f"sync read of {what}", comm)
            for name, motor_id in zip(names, ids):
                data, error = raw[motor_id]
                self._check_status(name, what, error)
                for register, (address, size) in placed.items():
                    field = bytes(data[address - start : address - start + size])
                    value = self._specs[name].decode(register, int.from_bytes(field, "little"))
                    values[register][name] = self._to_user(register, name, value) if normalize else value
        return values

    def _sync_read_once(self, reader: Any, ids: tuple[int, ...], size: int) -> tuple[dict, int, int]:
        # GroupSyncRead.rxPacket drops each motor's error byte; reading the status packets through the
        # SDK's readRx ourselves keeps the same wire exchange and surfaces overload/overheat alarms.
        self.port_handler.ser.reset_input_buffer()
        comm = reader.txPacket()
        if comm != self.sdk.COMM_SUCCESS:
            self.port_handler.is_using = False
            return {}, comm, ids[0]
        raw = {}
        for motor_id in ids:
            data, comm, error = self.packet_handler.readRx(self.port_handler, motor_id, size)
            if comm != self.sdk.COMM_SUCCESS:
                return raw, comm, motor_id  # the retry flushes whatever of this round arrives late
            raw[motor_id] = (data, error)
        return raw, comm, ids[-1]

    def sync_write(self, register: str, values: dict[str, int | float], *, normalize: bool = True) -> None:
        """Many motors' register in one SYNC_WRITE (no status packets: the fast path for control loops)."""
        names = list(values)
        address, size = self._common_address(register, names)
        with self._port():
            writer = self.sdk.GroupSyncWrite(self.port_handler, self.packet_handler, address, size)
            for name in names:
                raw = self._to_raw(register, name, values[name]) if normalize else int(values[name])
                payload = list(self._specs[name].encode(register, raw).to_bytes(size, "little"))
                writer.addParam(self.motors[name].id, payload)
            _, comm, _ = self._retry(lambda: (None, writer.txPacket(), None))
            if comm == self.sdk.COMM_SUCCESS:
                return
            self._fail(f"sync write of {register} to {names} on {self.port} failed: "
                       f"{self.packet_handler.getTxRxResult(comm)} Is the port still connected?")

    def _common_address(self, register: str, names: list[str]) -> tuple[int, int]:
        unknown = [n for n in names if n not in self.motors]
        if unknown:
            raise BusError(f"unknown motor(s) {unknown} on {self.port}; known: {list(self.motors)}")
        addresses = {self._specs[n].address(register) for n in names}
        if len(addresses) != 1:
            raise BusError(f"{register} sits at different addresses for motors {names}; read them one by one")
        return addresses.pop()

    def _to_user(self, register: str, motor: str, value: int) -> int | float:
        if register not in NORMALIZED_REGISTERS:
            return value
        m = self.motors[motor]
        cal, resolution = self._calibration(motor), self._specs[motor].resolution
        return normalize(value, cal, m.norm_mode, resolution, self.apply_drive_mode)

    def _to_raw(self, register: str, motor: str, value: float) -> int:
        if register not in NORMALIZED_REGISTERS:
            return int(value)
        m = self.motors[motor]
        cal, resolution = self._calibration(motor), self._specs[motor].resolution
        return unnormalize(value, cal, m.norm_mode, resolution, self.apply_drive_mode)

    def _calibration(self, motor: str) -> MotorCalibration:
        try:
            return self.calibration[motor]
        except KeyError:
            raise BusError(f"motor '{motor}' on {self.port} has no calibration; run `apprentice calibrate` "
                           "or pass normalize=False for raw ticks") from None

    def spec(self, motor: str) -> ModelSpec:
        return self._specs[motor]

    def enable_torque(self, motors: Iterable[str] | None = None) -> None:
        for motor in list(self.motors) if motors is None else motors:
            self._set_torque(motor, True)

    def disable_torque(self, motors: Iterable[str] | None = None) -> None:
        """Release every motor; one dead motor does not stop the others from being released."""
        failed = []
        for motor in list(self.motors) if motors is None else motors:
            try:
                self._set_torque(motor, False)
            except BusError as exc:
                failed.append(str(exc))
        if failed:
            raise BusError("could not disable torque: " + " | ".join(failed))

    def configure(self, return_delay_time: int = 0) -> None:
        """LeRobot's recommended setup: minimal return delay (status packets 2 µs after the instruction)."""
        for motor in self.motors:
            self.write("Return_Delay_Time", motor, return_delay_time)

    def read_calibration(self) -> dict[str, MotorCalibration]:
        raise NotImplementedError

    def write_calibration(self, calibration: dict[str, MotorCalibration]) -> None:
        """Write homing offsets and position limits into the motors (torque must be off) and keep them."""
        for motor, cal in calibration.items():
            self.write("Homing_Offset", motor, cal.homing_offset, normalize=False)
            self.write("Min_Position_Limit", motor, cal.range_min, normalize=False)
            self.write("Max_Position_Limit", motor, cal.range_max, normalize=False)
        self.calibration = dict(calibration)

    def is_calibrated(self) -> bool:
        """True when the motors hold exactly the calibration this bus was given."""
        return bool(self.calibration) and self.read_calibration() == self.calibration

    def reset_calibration(self, motors: Iterable[str] | None = None) -> None:
        for motor in list(self.motors) if motors is None else motors:
            self.write("Homing_Offset", motor, 0, normalize=False)
            self.write("Min_Position_Limit", motor, 0, normalize=False)
            self.write("Max_Position_Limit", motor, self._specs[motor].resolution - 1, normalize=False)
        self.calibration = {}

    def set_half_turn_homings(self, motors: Iterable[str] | None = None) -> dict[str, int]:
        """Write homing offsets so each motor's present position reads half a turn (2047 of 4096)."""
        names = list(self.motors) if motors is None else list(motors)
        self.reset_calibration(names)
        positions = self.sync_read("Present_Position", names, normalize=False)
        offsets = {m: self._half_turn_homing(int(positions[m]), self._specs[m]) for m in names}
        for motor, offset in offsets.items():
            self.write("Homing_Offset", motor, offset, normalize=False)
        return offsets
