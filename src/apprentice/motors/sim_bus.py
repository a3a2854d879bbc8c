"""A virtual servo bus on a pseudo-terminal, speaking Feetech SCS or Dynamixel Protocol 2.0 on the wire.

The vendor SDKs open `bus.port` (/dev/pts/N) like a USB serial adapter. A thread answers PING, READ, WRITE,
REG_WRITE/ACTION, SYNC_READ and SYNC_WRITE with status packets carrying real checksums (SCS: inverted byte
sum; Dynamixel: CRC-16/IBM 0x8005 with byte stuffing), honouring each motor's Return_Delay_Time and status
return level. Faults are injected per motor: silence, corrupted checksums, extra delay, overload alarm.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import threading
import tty
from collections import Counter
from types import TracebackType

from apprentice.motors.errors import BusError
from apprentice.motors.sim_motor import DXL_ERR_ACCESS, Faults, VirtualMotor
from apprentice.motors.tables import model_spec

PING, READ, WRITE, REG_WRITE, ACTION, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x82, 0x83
BROADCAST = 0xFE
DXL_STATUS = 0x55
DXL_ERR_INSTRUCTION = 2
_TCGETS2 = 0x802C542A  # Linux ioctl: read struct termios2 (arbitrary baud rates)


def crc16(data: bytes | bytearray) -> int:
    """CRC-16 of Dynamixel Protocol 2.0 (polynomial 0x8005, no reflection, initial value 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def scs_checksum(body: bytes | bytearray) -> int:
    return (~sum(body)) & 0xFF


class VirtualServoBus:
    """`with VirtualServoBus("feetech", {1: "sts3215", ...}) as bus:` then connect an SDK to `bus.port`."""

    def __init__(
        self,
        protocol: str,
        motors: dict[int, str],
        *,
        positions: dict[int, float] | None = None,
        tau_s: float = 0.03,
        baudrate: int | None = 1_000_000,
    ) -> None:
        if protocol not in ("feetech", "dynamixel"):
            raise BusError(f"virtual bus protocol must be 'feetech' or 'dynamixel', got '{protocol}'")
        self.protocol = protocol
        self.motors: list[VirtualMotor] = []
        for motor_id, model in motors.items():
            spec = model_spec(model)
            if spec.vendor != protocol:
                raise BusError(f"virtual {protocol} bus cannot host motor id {motor_id} ({model}, {spec.vendor})")
            motor = VirtualMotor(spec, motor_id, (positions or {}).get(motor_id), tau_s=tau_s)
            if baudrate is not None:  # as after LeRobot's setup_motors; None keeps the factory rate
                if baudrate not in spec.baud_rates:
                    raise BusError(f"{model} cannot run at {baudrate} baud; rates: {sorted(spec.baud_rates)}")
                motor.regs[spec.table["Baud_Rate"][0]] = spec.baud_rates[baudrate]
            self.motors.append(motor)
        self.rx_packets = 0
        self.rx_bad_checksum = 0
        self.instructions: Counter[int] = Counter()  # instruction packets served, by instruction code
        self._host_baud = 0
        self._master = self._slave = -1
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pending: dict[int, tuple[int, bytes]] = {}  # REG_WRITE waiting for ACTION
        self.port = ""

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> str:
        self._master, self._slave = os.openpty()
        # Raw mode before any client opens it: no echo, no CR/LF translation of binary packets. The server
        # keeps the slave end open so the master never sees EOF/EIO when a client closes and reopens.
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"virtual-{self.protocol}-bus", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=10.0)
        if self._thread.is_alive():
            # Never close the fds under a live thread: the numbers would be reused by the next pty it
            # would then read from and answer on.
            raise BusError(f"virtual bus {self.port}: server thread did not stop; its pty stays open")
        self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> VirtualServoBus:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def motor(self, motor_id: int) -> VirtualMotor:
        for m in self.motors:
            if m.id == motor_id:
                return m
        raise BusError(f"virtual bus {self.port} has no motor with id {motor_id}")

    def fault(self, motor_id: int) -> Faults:
        """The (mutable) fault settings of the motor now at `motor_id`: `bus.fault(3).silent = True`."""
        return self.motor(motor_id).faults

    def clear_faults(self) -> None:
        for motor in self.motors:
            motor.faults = Faults()

    # -- serving --------------------------------------------------------------------------------------
    def _serve(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, self._wake_r], [], [], 0.5)
            if self._master not in ready:
                continue
            try:
                buffer += os.read(self._master, 4096)
            except OSError:
                self._stop.wait(0.01)
                continue
            parse = self._parse_scs if self.protocol == "feetech" else self._parse_dxl
            self._host_baud = self._read_host_baud()
            while not self._stop.is_set():
                packet = parse(buffer)
                if packet is None:
                    break
                self.rx_packets += 1
                self._dispatch(*packet)

    def _parse_scs(self, buf: bytearray) -> tuple[int, int, bytes] | None:
        """Pop one instruction packet FF FF ID LEN INST P.. CHK from `buf`; resynchronise on garbage."""
        while len(buf) >= 6:
            if buf[0] != 0xFF or buf[1] != 0xFF or buf[2] == 0xFF or buf[3] < 2:
                del buf[0]
                continue
            total = buf[3] + 4
            if len(buf) < total:
                return None
            packet = bytes(buf[:total])
            if scs_checksum(packet[2:-1]) != packet[-1]:
                self.rx_bad_checksum += 1  # a real servo ignores a corrupted instruction
                del buf[0]
                continue
            del buf[:total]
            return packet[2], packet[4], packet[5:-1]
        return None

    def _parse_dxl(self, buf: bytearray) -> tuple[int, int, bytes] | None:
        """Pop one Protocol 2.0 instruction FF FF FD 00 ID LEN_L LEN_H INST P.. CRC_L CRC_H from `buf`."""
        while len(buf) >= 10:
            if bytes(buf[:4]) != b"\xff\xff\xfd\x00":
                del buf[0]
                continue
            total = int.from_bytes(buf[5:7], "little") + 7
            if total > 1024:
                del buf[0]
                continue
            if len(buf) < total:
                return None
            packet = bytes(buf[:total])
            if crc16(packet[:-2]) != int.from_bytes(packet[-2:], "little"):
                self.rx_bad_checksum += 1
                del buf[0]
                continue
            del buf[:total]
            return packet[4], packet[7], packet[8:-2].replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")
        return None

    def _dispatch(self, target: int, inst: int, params: bytes) -> None:
        self.instructions[inst] += 1
        dxl = self.protocol == "dynamixel"
        word = 2 if dxl else 1  # address/length fields are 16-bit in Protocol 2.0, 8-bit in SCS
        if inst in (SYNC_READ, SYNC_WRITE) and target == BROADCAST:
            address = int.from_bytes(params[:word], "little")
            length = int.from_bytes(params[word : 2 * word], "little")
            body = params[2 * word :]
            if inst == SYNC_READ:
                for motor_id in body:
                    self._reply_read(motor_id, address, length, forced=True)
            else:
                for i in range(0, len(body) - length + 1, length + 1):
                    for motor in self._executors(body[i]):
                        motor.write(address, body[i + 1 : i + 1 + length])
            return
        if inst == PING and target == BROADCAST:
            for motor in sorted(self.motors, key=lambda m: m.id):
                if self._find(motor.id) is not None:
                    self._reply(motor, self._ping_params(motor), forced=True)
            return
        if inst == ACTION:
            for motor_id, (address, data) in list(self._pending.items()):
                if target in (BROADCAST, motor_id) and (motor := self._find(motor_id)) is not None:
                    motor.write(address, data)
                    del self._pending[motor_id]
            return
        motor = self._find(target)
        if motor is None and target != BROADCAST:
            return  # nobody with that id on the bus: silence, as on a real bus
        if inst == PING:
            self._reply(motor, self._ping_params(motor), forced=True)
        elif inst == READ:
            address = int.from_bytes(params[:word], "little")
            self._reply_read(target, address, int.from_bytes(params[word : 2 * word], "little"))
        elif inst in (WRITE, REG_WRITE):
            address, data = int.from_bytes(params[:word], "little"), params[word:]
            if inst == WRITE and target != BROADCAST:
                for shadow in self._shadows(target):  # executes, never answers (e-Manual, Secondary ID)
                    shadow.write(address, data)
            targets = [m for m in self.motors if self._find(m.id)] if target == BROADCAST else [motor]
            for m in targets:
                heard_as = m.id  # a write to ID is acknowledged under the id the instruction used
                if inst == REG_WRITE:
                    self._pending[m.id] = (address, data)
                    error = 0
                else:
                    error = m.write(address, data)
                if target != BROADCAST:
                    self._reply(m, b"", error=error, reply_id=heard_as)
        elif motor is not None and dxl:
            self._reply(motor, b"", error=DXL_ERR_INSTRUCTION)

    def _read_host_baud(self) -> int:
        """The baud rate the host set on its end of the pty (TCGETS2 on the master reports the slave's)."""
        buf = array.array("i", [0] * 64)
        fcntl.ioctl(self._master, _TCGETS2, buf)
        return buf[9]  # struct termios2: 4 flags, c_line + c_cc[19] (5 ints), then c_ispeed

    def _find(self, motor_id: int) -> VirtualMotor | None:
        """The motor with this id that hears the host: not `silent` (unplugged), and at the host's baud
        rate (a motor at another rate sees only noise, so it neither executes nor answers)."""
        for m in self.motors:
            if m.id == motor_id and not m.faults.silent and self._hears(m):
                return m
        return None

    def _shadows(self, motor_id: int) -> list[VirtualMotor]:
        """Dynamixel motors whose Secondary_ID is `motor_id`: they execute WRITE and SYNC_WRITE addressed
        to it without a status packet (Interbotix arms pair a shoulder/elbow motor with its shadow so)."""
        if self.protocol != "dynamixel" or motor_id > 252:
            return []
        return [
            m
            for m in self.motors
            if m.id != motor_id and m.get("Secondary_ID") == motor_id and not m.faults.silent and self._hears(m)
        ]

    def _executors(self, motor_id: int) -> list[VirtualMotor]:
        """Every motor that executes a SYNC_WRITE parameter block for `motor_id`: itself and its shadows."""
        motor = self._find(motor_id)
        return ([motor] if motor is not None else []) + self._shadows(motor_id)

    def _hears(self, motor: VirtualMotor) -> bool:
        return motor.spec.baud_rates.get(self._host_baud, -1) == motor.get("Baud_Rate")

    def _ping_params(self, motor: VirtualMotor) -> bytes:
        if self.protocol == "feetech":
            return b""  # SCS PING status has no parameters; the SDK then READs Model_Number
        return motor.spec.model_number.to_bytes(2, "little") + bytes([motor.get("Firmware_Version")])

    def _reply_read(self, motor_id: int, address: int, length: int, forced: bool = False) -> None:
        motor = self._find(motor_id)
        if motor is None:
            return
        if address + length > len(motor.regs):
            self._reply(motor, b"", error=DXL_ERR_ACCESS if self.protocol == "dynamixel" else 0)
            return
        self._reply(motor, motor.read(address, length), is_read=True, forced=forced)

    def _reply(
        self,
        motor: VirtualMotor,
        params: bytes,
        error: int = 0,
        is_read: bool = False,
        forced: bool = False,
        reply_id: int | None = None,
    ) -> None:
        """Send one status packet, unless the motor's status return level or a fault says otherwise."""
        reply_id = motor.id if reply_id is None else reply_id
        fault = motor.faults
        if self.protocol == "feetech":
            level = motor.get("Response_Status_Level")  # 0: answer only READ/PING
            wanted = forced or is_read or level >= 1
        else:
            level = motor.get("Status_Return_Level")  # 0: PING only, 1: +READ, 2: all
            wanted = forced or (is_read and level >= 1) or level >= 2
        if not wanted or fault.silent:
            return
        if fault.drop_next > 0:
            fault.drop_next -= 1
            return
        packet = self._status_packet(reply_id, error | motor.status_error(), params)
        if fault.corrupt or fault.corrupt_next > 0:
            fault.corrupt_next = max(0, fault.corrupt_next - 1)
            packet = packet[:-1] + bytes([packet[-1] ^ 0x5A])
        delay = motor.get("Return_Delay_Time") * 2e-6 + fault.delay_s
        if delay > 0:
            self._stop.wait(delay)  # a stop() does not wait for injected latency
        os.write(self._master, packet)

    def _status_packet(self, motor_id: int, error: int, params: bytes) -> bytes:
        if self.protocol == "feetech":
            body = bytes([motor_id, len(params) + 2, error]) + params
            return b"\xff\xff" + body + bytes([scs_checksum(body)])
        stuffed = params.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")
        length = len(stuffed) + 4  # INST + ERROR + params + CRC
        head = b"\xff\xff\xfd\x00" + bytes([motor_id]) + length.to_bytes(2, "little")
        packet = head + bytes([DXL_STATUS, error]) + stuffed
        return packet + crc16(packet).to_bytes(2, "little")
