"""ROBOTIS Dynamixel X-series servos (Koch v1.1) through `dynamixel_sdk`, Protocol 2.0."""

from __future__ import annotations

import math
from typing import Any

import dynamixel_sdk

from apprentice.motors.bus import MotorsBus
from apprentice.motors.calibration import MotorCalibration
from apprentice.motors.port import WaitingReads
from apprentice.motors.tables import ModelSpec


class DynamixelPortHandler(WaitingReads, dynamixel_sdk.PortHandler):
    """The SDK's PortHandler with `WaitingReads` timing (same bytes on the wire)."""


class DynamixelBus(MotorsBus):
    vendor = "dynamixel"
    default_baudrate = 1_000_000
    # X-series invert direction in hardware (Drive_Mode bit 0), so normalization must not flip again.
    apply_drive_mode = False
    sdk = dynamixel_sdk
    port_handler_class = DynamixelPortHandler

    def velocity_to_rad_s(self, motor: str, raw: int) -> float:
        # X-series Present_Velocity unit: 0.229 rev/min
        return raw * 0.229 * 2.0 * math.pi / 60.0

    def rad_s_to_velocity(self, motor: str, rad_s: float) -> int:
        """Radians per second -> a Goal_Velocity register value (inverse of velocity_to_rad_s)."""
        return round(rad_s * 60.0 / (0.229 * 2.0 * math.pi))

    def _make_packet_handler(self) -> Any:
        return dynamixel_sdk.PacketHandler(2.0)

    def _half_turn_homing(self, raw_position: int, spec: ModelSpec) -> int:
        # Dynamixel: Present_Position = Actual_Position + Homing_Offset
        return (spec.resolution - 1) // 2 - raw_position

    def _instruction_error_hint(self, register: str, error: int) -> str | None:
        if not error & 0x7F:  # bit 7 is the hardware alert; the low bits an instruction error number
            return None
        if error & 0x7F != 7 or self._specs_eeprom(register):
            return ""
        return "EEPROM registers (address < 64) accept writes only with Torque_Enable=0: call disable_torque() first."

    def _specs_eeprom(self, register: str) -> bool:
        """True when `register` is NOT in EEPROM (so an access error has another cause)."""
        spec = next(iter(self._specs.values()))
        return spec.address(register)[0] >= spec.eeprom_end

    def read_calibration(self) -> dict[str, MotorCalibration]:
        offsets = self.sync_read("Homing_Offset", normalize=False)
        mins = self.sync_read("Min_Position_Limit", normalize=False)
        maxes = self.sync_read("Max_Position_Limit", normalize=False)
        drive_modes = self.sync_read("Drive_Mode", normalize=False)
        return {
            motor: MotorCalibration(
                id=m.id,
                drive_mode=int(drive_modes[motor]) & 1,
                homing_offset=int(offsets[motor]),
                range_min=int(mins[motor]),
                range_max=int(maxes[motor]),
            )
            for motor, m in self.motors.items()
        }

    def write_calibration(self, calibration: dict[str, MotorCalibration]) -> None:
        # Drive_Mode too, so that a calibration file alone fully defines the arm's joint directions.
        for motor, cal in calibration.items():
            self.write("Drive_Mode", motor, cal.drive_mode, normalize=False)
        super().write_calibration(calibration)

    def broadcast_ping(self) -> dict[int, int]:
        """id -> model number of every motor on the bus, from one broadcast PING."""
        with self._port():
            data, comm = self.packet_handler.broadcastPing(self.port_handler)
        if comm != dynamixel_sdk.COMM_SUCCESS:
            return {}
        return {int(motor_id): int(values[0]) for motor_id, values in data.items()}
