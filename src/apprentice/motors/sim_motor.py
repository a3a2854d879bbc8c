"""One simulated servo: the model's register file and first-order motion toward Goal_Position.

The register file holds exactly what the real motor holds (same addresses, sizes, encodings, factory
values), and the side effects that matter to a driver are modelled: homing offset and drive mode shape
Present_Position, position limits clamp the goal, torque enable holds the present position, EEPROM is
write-protected while torque is on (Dynamixel), and an overload alarm drops torque as the firmware does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from apprentice.motors.tables import ModelSpec

# Error bits the motors put in their status packets.
FEETECH_OVERLOAD = 0x20  # SCS status error byte bit 5 (the SDK's ERRBIT_OVERLOAD)
DXL_HW_OVERLOAD = 0x20  # Hardware_Error_Status bit 5 (overload); status packets then carry the 0x80 alert bit
DXL_ALERT = 0x80
DXL_ERR_DATA_RANGE = 4
DXL_ERR_ACCESS = 7

_DXL_FIRST_READ_ONLY = 120  # Realtime_Tick and everything after it
_REG_FILE_SIZE = {"feetech": 256, "dynamixel": 1024}


@dataclass
class Faults:
    """Per-motor fault injection. Counters (`*_next`) apply to that many status packets, then clear."""

    silent: bool = False  # gone from the bus: ignores instructions, never answers (unplugged, no power)
    drop_next: int = 0  # swallow the next N replies (a transient glitch the driver must retry through)
    corrupt_next: int = 0  # flip the checksum/CRC of the next N replies
    corrupt: bool = False  # always a bad checksum
    delay_s: float = 0.0  # extra latency before every reply


class VirtualMotor:
    """A servo's register file plus its shaft. Thread-safe: the bus thread and test code both touch it."""

    def __init__(self, spec: ModelSpec, motor_id: int, position: float | None = None, tau_s: float = 0.03) -> None:
        self.spec = spec
        self.tau_s = tau_s
        self.regs = bytearray(_REG_FILE_SIZE[spec.vendor])
        self.lock = threading.RLock()
        for register, value in spec.factory.items():
            self._store(register, value)
        self._store("Model_Number", spec.model_number)
        self._store("ID", motor_id)
        self.actual = float(spec.resolution // 2 if position is None else position)  # encoder ticks
        self.target = self.actual
        self.velocity = 0.0  # ticks/s, measured over the last step
        self.speed = 0.0  # ticks/s of the shaft in velocity mode (its state there)
        self.hardware_error = 0  # alarm bits (fault injection); see FEETECH_OVERLOAD / DXL_HW_OVERLOAD
        self.hand: Callable[[float], float] | None = None  # encoder position over time while torque is off
        self.faults = Faults()
        self._t_last = time.monotonic()
        self._t0 = self._t_last
        self._sync_goal_to_present()

    # -- register access ------------------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.get("ID")

    def get(self, register: str) -> int:
        address, size = self.spec.table[register]
        return self.spec.decode(register, int.from_bytes(self.regs[address : address + size], "little"))

    def _store(self, register: str, value: int) -> None:
        address, size = self.spec.table[register]
        self.regs[address : address + size] = self.spec.encode(register, int(value)).to_bytes(size, "little")

    def read(self, address: int, length: int) -> bytes:
        with self.lock:
            self.step()
            return bytes(self.regs[address : address + length]).ljust(length, b"\0")

    def write(self, address: int, data: bytes) -> int:
        """Apply a WRITE; return the Dynamixel error number (0 = ok). Feetech motors always accept."""
        with self.lock:
            self.step()
            touched = {name for name, (a, s) in self.spec.table.items() if a < address + len(data) and address < a + s}
            if self.spec.vendor == "dynamixel":
                if address + len(data) > _DXL_FIRST_READ_ONLY or address < 7:
                    return DXL_ERR_ACCESS
                if self.get("Torque_Enable") and address < self.spec.eeprom_end and "Torque_Enable" not in touched:
                    return DXL_ERR_ACCESS
                if "Operating_Mode" in touched and data[11 - address] not in self.spec.operating_modes:
                    return DXL_ERR_DATA_RANGE
            was_on = self.get("Torque_Enable")
            self.regs[address : address + len(data)] = data
            if "Torque_Enable" in touched and self.get("Torque_Enable") and not was_on:
                if self.hardware_error:  # firmware refuses torque until the alarm is cleared
                    self._store("Torque_Enable", 0)
                else:
                    self._sync_goal_to_present()
            elif "Goal_Position" in touched:
                self.target = self._target_from_goal(self.get("Goal_Position"))
            elif touched & {"Homing_Offset", "Drive_Mode"}:
                self._sync_goal_to_present()
            return 0

    # -- the shaft ------------------------------------------------------------------------------------
    def step(self, now: float | None = None) -> None:
        """Advance the first-order motion to `now` and refresh the Present_* registers."""
        now = time.monotonic() if now is None else now
        dt = max(0.0, now - self._t_last)
        self._t_last = now
        previous = self.actual
        if self.get("Torque_Enable") and self.velocity_mode():
            # Wheel mode: the shaft speed settles on Goal_Velocity with the same first-order lag.
            goal = self.goal_velocity_ticks()
            decay = math.exp(-dt / self.tau_s)
            # Exact integral of the lagged speed over dt (steps are as long as the gaps between packets).
            self.actual += goal * dt + (self.speed - goal) * self.tau_s * (1.0 - decay)
            self.speed = goal + (self.speed - goal) * decay
        elif self.get("Torque_Enable"):
            self.actual += (self.target - self.actual) * (1.0 - math.exp(-dt / self.tau_s))
        elif self.hand is not None:
            self.actual = float(self.hand(now - self._t0))
        if self.get("Torque_Enable") and self.velocity_mode():
            self.velocity = self.speed  # what the encoder's speed estimate reports now
        else:
            self.velocity = (self.actual - previous) / dt if dt > 0 else 0.0
            self.speed = self.velocity
        self._refresh(now)

    def velocity_mode(self) -> bool:
        """Operating_Mode 1: Feetech STS wheel (constant speed) mode, Dynamixel X velocity control mode."""
        return self.get("Operating_Mode") == 1

    def goal_velocity_ticks(self) -> float:
        """Goal_Velocity in encoder ticks per second (STS: steps/s; X series: 0.229 rev/min units)."""
        goal = self.get("Goal_Velocity")
        if self.spec.vendor == "feetech":
            return float(goal)
        return goal * 0.229 * self.spec.resolution / 60.0

    def set_hand_position(self, present: float) -> None:
        """Move the shaft by hand so that Present_Position reads `present` (torque must be off to stay)."""
        with self.lock:
            self.step()
            self.actual = self._actual_from_present(present)
            self.target = self.actual if not self.get("Torque_Enable") else self.target
            self._refresh(time.monotonic())

    def set_overload(self, active: bool) -> None:
        """Raise/clear the overload alarm; like the firmware (Shutdown/Unloading bits), it drops torque."""
        with self.lock:
            bit = FEETECH_OVERLOAD if self.spec.vendor == "feetech" else DXL_HW_OVERLOAD
            self.hardware_error = (self.hardware_error | bit) if active else (self.hardware_error & ~bit)
            if active:
                self._store("Torque_Enable", 0)
            self._refresh(time.monotonic())

    def status_error(self) -> int:
        """The error byte this motor puts in every status packet."""
        if self.spec.vendor == "feetech":
            return self.hardware_error & 0x7F
        return DXL_ALERT if self.hardware_error else 0

    # -- frames ---------------------------------------------------------------------------------------
    def _sign(self) -> int:
        return -1 if self.spec.vendor == "dynamixel" and self.get("Drive_Mode") & 1 else 1

    def _present_from_actual(self, actual: float) -> float:
        if self.spec.vendor == "feetech":  # Present = Actual - Homing_Offset, one turn
            return (actual - self.get("Homing_Offset")) % self.spec.resolution
        return self._sign() * actual + self.get("Homing_Offset")  # Present = Actual + Homing_Offset

    def _actual_from_present(self, present: float) -> float:
        if self.spec.vendor == "feetech":
            return present + self.get("Homing_Offset")
        return self._sign() * (present - self.get("Homing_Offset"))

    def _target_from_goal(self, goal: int) -> float:
        low, high = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
        single_turn = self.spec.vendor == "feetech" or self.get("Operating_Mode") == 3
        if single_turn and low < high:
            goal = min(high, max(low, goal))
        if self.spec.vendor == "feetech":
            # Feetech goals live in the one-turn present frame: move by the difference from the present.
            present = self._present_from_actual(self.actual)
            return self.actual + (goal - present)
        return self._actual_from_present(goal)

    def _sync_goal_to_present(self) -> None:
        self.target = self.actual
        present = round(self._present_from_actual(self.actual))
        if self.spec.vendor == "feetech":
            present %= self.spec.resolution
        self._store("Goal_Position", present)
        self._refresh(time.monotonic())

    def _refresh(self, now: float) -> None:
        present = round(self._present_from_actual(self.actual))
        moving = int(abs(self.target - self.actual) > 1.0 and bool(self.get("Torque_Enable")))
        if self.spec.vendor == "feetech":
            self._store("Present_Position", present % self.spec.resolution)
            speed = max(-32767, min(32767, round(self.velocity)))
            self._store("Present_Velocity", speed)
            self._store("Status", self.hardware_error & 0xFF)
            self._store("Moving", moving)
        else:
            self._store("Present_Position", present)
            # Present_Velocity unit is 0.229 rpm = 0.229 * 4096 / 60 ticks/s
            self._store("Present_Velocity", round(self.velocity * 60 / (0.229 * 4096)))
            self._store("Hardware_Error_Status", self.hardware_error)
            self._store("Moving", moving)
            self._store("Realtime_Tick", int(now * 1000) % 32768)
