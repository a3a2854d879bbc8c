"""Feetech STS/SMS servos (SO-100, SO-101) through the vendor SDK `scservo_sdk`, SCS protocol 0."""

from __future__ import annotations

import math
from typing import Any

import scservo_sdk

from apprentice.motors.bus import MotorsBus
from apprentice.motors.calibration import MotorCalibration
from apprentice.motors.port import WaitingReads
from apprentice.motors.tables import ModelSpec

_BROADCAST_WINDOW_S = 0.05


class FeetechPortHandler(WaitingReads, scservo_sdk.PortHandler):
    """The SDK's PortHandler with `WaitingReads` timing (same bytes on the wire)."""


class FeetechBus(MotorsBus):
    vendor = "feetech"
    default_baudrate = 1_000_000
    # STS servos have no drive-mode register: LeRobot applies drive_mode in software, so do we.
    apply_drive_mode = True
    sdk = scservo_sdk
    port_handler_class = FeetechPortHandler

    def velocity_to_rad_s(self, motor: str, raw: int) -> float:
        # STS Present_Velocity counts position steps per second (positions: 2*pi per resolution-1 steps)
        return raw * 2.0 * math.pi / (self.spec(motor).resolution - 1)

    def rad_s_to_velocity(self, motor: str, rad_s: float) -> int:
        """Radians per second -> a Goal_Velocity register value (inverse of velocity_to_rad_s)."""
        return round(rad_s * (self.spec(motor).resolution - 1) / (2.0 * math.pi))

    def _make_packet_handler(self) -> Any:
        return scservo_sdk.PacketHandler(0)  # 0 = little-endian words (STS/SMS); 1 would be SCS series

    def _half_turn_homing(self, raw_position: int, spec: ModelSpec) -> int:
        # Feetech: Present_Position = Actual_Position - Homing_Offset
        return raw_position - (spec.resolution - 1) // 2

    def _set_torque(self, motor: str, enabled: bool) -> None:
        # Lock=1 write-protects the EPROM while torque is on; unlock when releasing, as LeRobot does.
        self.write("Torque_Enable", motor, int(enabled))
        self.write("Lock", motor, int(enabled))

    def configure(self, return_delay_time: int = 0, maximum_acceleration: int = 254, acceleration: int = 254) -> None:
        """LeRobot's setup: 2 µs return delay, fastest acceleration ramps."""
        for motor in self.motors:
            self.write("Return_Delay_Time", motor, return_delay_time)
            self.write("Maximum_Acceleration", motor, maximum_acceleration)
            self.write("Acceleration", motor, acceleration)

    def read_calibration(self) -> dict[str, MotorCalibration]:
        calibration = {}
        for motor, m in self.motors.items():
            known = self.calibration.get(motor)
            calibration[motor] = MotorCalibration(
                id=m.id,
                # drive_mode lives only in the file for Feetech (applied in software)
                drive_mode=known.drive_mode if known else 0,
                homing_offset=int(self.read("Homing_Offset", motor, normalize=False)),
                range_min=int(self.read("Min_Position_Limit", motor, normalize=False)),
                range_max=int(self.read("Max_Position_Limit", motor, normalize=False)),
            )
        return calibration

    def broadcast_ping(self) -> dict[int, int]:
        """id -> model number of every motor on the bus, from one broadcast PING."""
        ph, port = self.packet_handler, self.port_handler
        with self._port():
            packet = [0xFF, 0xFF, scservo_sdk.BROADCAST_ID, 2, scservo_sdk.INST_PING, 0]
            if ph.txPacket(port, packet) != scservo_sdk.COMM_SUCCESS:
                port.is_using = False
                return {}
            port.setPacketTimeoutMillis(max(_BROADCAST_WINDOW_S * 1000, self.timeout_ms))  # pty: see port.py
            buffer = bytearray()
            while not port.isPacketTimeout():
                buffer += bytes(port.readPort(64))
            port.is_using = False
            ids = _parse_status_ids(buffer)
        return {motor_id: model for motor_id in ids if (model := self.ping(motor_id)) is not None}


def _parse_status_ids(buffer: bytearray) -> list[int]:
    """Ids of the well-formed 6-byte SCS status packets in `buffer` (checksum verified)."""
    ids, i = [], 0
    while i + 6 <= len(buffer):
        if buffer[i] == 0xFF and buffer[i + 1] == 0xFF and buffer[i + 3] == 2:
            body = buffer[i + 2 : i + 5]
            if (~sum(body)) & 0xFF == buffer[i + 5]:
                ids.append(buffer[i + 2])
                i += 6
                continue
        i += 1
    return ids
