"""An arm on a servo bus in joint space (radians), with the safety rules the driver relies on.

Safety: every goal is clipped to the joint's YAML limits, then to `max_relative_target` from the last
measured position, then to the calibrated range (range_min..range_max ticks). A bus failure that survives
the bounded retries, or a motor alarm (overload, overheat, voltage), is fatal: torque is dropped on all
motors (unless `torque_off_on_error=False`) and a RobotError names the motor — never a stale value.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

import numpy as np

from apprentice.motors import (
    BUS_CLASSES,
    BusError,
    BusHealth,
    MotorCalibration,
    radians_to_ticks,
    ticks_to_radians,
)
from apprentice.robots.definition import RobotDefinition
from apprentice.robots.errors import RobotError

T = TypeVar("T")
NO_SECONDARY_ID = 255  # Dynamixel Secondary_ID values 253..255 mean "none"
SHADOW_TOLERANCE_TICKS = 60  # ~5 degrees: a shadow and its primary share one shaft through the joint


class Arm:
    def __init__(
        self,
        definition: RobotDefinition,
        port: str,
        *,
        calibration: dict[str, MotorCalibration] | None = None,
        max_relative_target: float | dict[str, float] | None = None,
        torque_off_on_error: bool = True,
        num_retry: int = 3,
    ) -> None:
        self.definition = definition
        self.joint_names = definition.joint_names
        self.bus = BUS_CLASSES[definition.vendor](
            port, definition.motors(), calibration, baudrate=definition.baudrate, num_retry=num_retry
        )
        self.wheel_names = definition.wheel_names
        self.shadow_ids = {s.name: definition.motors()[s.mirrors].id for s in definition.shadows}
        if calibration is not None:
            missing = sorted(set(definition.motor_names) - set(calibration))
            if missing:
                raise RobotError(f"calibration for {definition.type} lacks joint(s) {missing}; recalibrate")
        self._given_calibration = calibration
        mrt = definition.max_relative_target if max_relative_target is None else max_relative_target
        self.max_relative_target = self._per_joint(mrt, np.inf)
        self.lower = np.array([j.lower for j in definition.joints])
        self.upper = np.array([j.upper for j in definition.joints])
        self.torque_off_on_error = torque_off_on_error
        self.torque_enabled = False
        self.present = np.zeros(len(self.joint_names))

    def _per_joint(self, value: float | dict[str, float] | None, default: float) -> np.ndarray:
        if value is None:
            return np.full(len(self.joint_names), default)
        if isinstance(value, dict):
            return np.array([float(value.get(n, default)) for n in self.joint_names])
        return np.full(len(self.joint_names), float(value))

    @property
    def port(self) -> str:
        return self.bus.port

    @property
    def calibration(self) -> dict[str, MotorCalibration]:
        return self.bus.calibration

    @property
    def health(self) -> BusHealth:
        return self.bus.health

    def connect(self, configure: bool = True, enable_torque: bool | None = None) -> None:
        """Open the bus, make the motors hold the calibration, apply the YAML setup, torque per role."""
        self.bus.connect()
        try:
            if self.shadow_ids:
                # Unlinked while calibration is written: a Homing_Offset written to a primary would
                # otherwise land on its shadow too (it executes everything sent to its Secondary_ID).
                self.bus.disable_torque()
                for shadow in self.shadow_ids:
                    self.bus.write("Secondary_ID", shadow, NO_SECONDARY_ID, normalize=False)
            if self._given_calibration is not None:
                if not self.bus.is_calibrated():
                    self.bus.disable_torque()
                    self.bus.write_calibration(self._given_calibration)
            else:
                # No file: use what the motors hold (their EEPROM keeps the last calibration written).
                self.bus.calibration = self.bus.read_calibration()
            if configure:
                self.bus.disable_torque()
                self.bus.configure()
                for joint, register, value in self.definition.registers_to_configure():
                    self.bus.write(register, joint, value, normalize=False)
            # Linked on every connect, configure or not: a primary moving without its shadow fights it.
            for shadow, primary_id in self.shadow_ids.items():
                self.bus.write("Secondary_ID", shadow, primary_id, normalize=False)
            self._check_shadows_agree()
            if self.wheel_names:
                self.bus.sync_write("Goal_Velocity", dict.fromkeys(self.wheel_names, 0), normalize=False)
            self.read_positions()
            if self.definition.role == "follower" if enable_torque is None else enable_torque:
                self.set_torque(True)
            elif self.definition.torque_holds:
                # LeRobot's Koch leader: the gripper servo holds a goal (normalized units) under torque,
                # so it springs back when the operator's finger releases it.
                for joint, goal in self.definition.torque_holds.items():
                    self.bus.write("Torque_Enable", joint, 1, normalize=False)
                    self.bus.write("Goal_Position", joint, goal)
        except BusError:
            self.bus.disconnect(disable_torque=False)
            raise

    def _check_shadows_agree(self) -> None:
        """Refuse torque when a shadow's calibrated frame disagrees with its primary's: both would then
        fight over the joint. Calibrating (shadows included) makes both read the same at every pose."""
        if not self.shadow_ids:
            return
        mirrors = {s.name: s.mirrors for s in self.definition.shadows}
        raw = self.bus.sync_read("Present_Position", [*mirrors, *mirrors.values()], normalize=False)
        for shadow, primary in mirrors.items():
            gap = abs(int(raw[shadow]) - int(raw[primary]))
            if gap > SHADOW_TOLERANCE_TICKS:
                raise RobotError(
                    f"{self.definition.type} on {self.port}: shadow motor '{shadow}' reads {gap} ticks away from "
                    f"'{primary}'; torque stays off. Calibrate the arm (shadows included) or fix its calibration file"
                )

    def disconnect(self, disable_torque: bool = True) -> None:
        try:
            if self.wheel_names and self.bus.is_connected:
                with suppress(BusError):  # a dead bus cannot drive the wheels either; torque goes next
                    self.stop_wheels()
            self.bus.disconnect(disable_torque=disable_torque)
        finally:
            self.torque_enabled = False

    def set_torque(self, enabled: bool) -> None:
        # Enabling makes each motor hold its present position (the firmware resets the goal to it).
        self._guarded(lambda: self.bus.enable_torque() if enabled else self.bus.disable_torque())
        self.torque_enabled = enabled

    def read_positions(self) -> np.ndarray:
        """Present joint positions in radians (one SYNC_READ), in definition order."""
        raw = self._guarded(lambda: self.bus.sync_read("Present_Position", self.joint_names, normalize=False))
        return self._positions_from(raw)

    def read_velocities(self) -> np.ndarray:
        """Present joint velocities in rad/s (one SYNC_READ of Present_Velocity), in definition order."""
        raw = self._guarded(lambda: self.bus.sync_read("Present_Velocity", self.joint_names, normalize=False))
        return self._velocities_from(raw)

    def read_positions_and_velocities(self) -> tuple[np.ndarray, np.ndarray]:
        """Both in ONE SYNC_READ of the block holding Present_Position and Present_Velocity."""
        raw = self._guarded(
            lambda: self.bus.sync_read_many(
                ["Present_Position", "Present_Velocity"], self.joint_names, normalize=False
            )
        )
        return self._positions_from(raw["Present_Position"]), self._velocities_from(raw["Present_Velocity"])

    def _velocities_from(self, raw: dict[str, int | float]) -> np.ndarray:
        return np.array([self.bus.velocity_to_rad_s(n, int(raw[n])) for n in self.joint_names])

    def _positions_from(self, raw: dict[str, int | float]) -> np.ndarray:
        alarms = {m: e for m, e in self.bus.health.hardware_errors.items() if m in raw}
        if alarms:
            self._fatal(
                f"motor alarm on {self.port}: "
                + ", ".join(
                    f"'{m}' (id {self.bus.motors[m].id}) {self.bus.packet_handler.getRxPacketError(e)}"
                    for m, e in alarms.items()
                )
                + " Let it cool / remove the load, then re-enable torque."
            )
        self.present = np.array([self._to_rad(n, raw[n]) for n in self.joint_names])
        return self.present.copy()

    def send_positions(self, goal: np.ndarray) -> np.ndarray:
        """Command joint positions (radians) through the safety clamps; return what was actually sent."""
        goal = np.asarray(goal, dtype=float)
        if goal.shape != (len(self.joint_names),) or not np.all(np.isfinite(goal)):
            raise RobotError(
                f"{self.definition.type}: command must be {len(self.joint_names)} finite "
                f"positions for {self.joint_names}, got {goal.tolist()}"
            )
        goal = np.clip(goal, self.lower, self.upper)
        goal = self.present + np.clip(goal - self.present, -self.max_relative_target, self.max_relative_target)
        ticks = {}
        for name, value in zip(self.joint_names, goal):
            cal = self.calibration[name]
            ticks[name] = min(
                cal.range_max, max(cal.range_min, radians_to_ticks(value, cal, self.bus.spec(name).resolution))
            )
        self._guarded(lambda: self.bus.sync_write("Goal_Position", ticks, normalize=False))
        return np.array([self._to_rad(n, ticks[n]) for n in self.joint_names])

    def send_wheel_velocities(self, rad_s: np.ndarray) -> np.ndarray:
        """Command the wheels' angular speeds (rad/s, in `wheel_names` order; one SYNC_WRITE of
        Goal_Velocity); return what was sent after rounding to the register's unit."""
        rad_s = np.asarray(rad_s, dtype=float)
        if rad_s.shape != (len(self.wheel_names),) or not np.all(np.isfinite(rad_s)):
            raise RobotError(
                f"{self.definition.type}: wheel command must be {len(self.wheel_names)} finite speeds for "
                f"{self.wheel_names}, got {rad_s.tolist()}"
            )
        raw = {n: self.bus.rad_s_to_velocity(n, v) for n, v in zip(self.wheel_names, rad_s)}
        self._guarded(lambda: self.bus.sync_write("Goal_Velocity", raw, normalize=False))
        return np.array([self.bus.velocity_to_rad_s(n, raw[n]) for n in self.wheel_names])

    def stop_wheels(self) -> None:
        self.send_wheel_velocities(np.zeros(len(self.wheel_names)))

    def read_wheel_velocities(self) -> np.ndarray:
        """Present wheel speeds in rad/s (one SYNC_READ of Present_Velocity), in `wheel_names` order."""
        raw = self._guarded(lambda: self.bus.sync_read("Present_Velocity", self.wheel_names, normalize=False))
        return np.array([self.bus.velocity_to_rad_s(n, int(raw[n])) for n in self.wheel_names])

    def _to_rad(self, name: str, raw: float) -> float:
        return ticks_to_radians(raw, self.calibration[name], self.bus.spec(name).resolution)

    def _guarded(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except BusError as exc:
            self._fatal(str(exc))
            raise  # unreachable: _fatal raises

    def _fatal(self, message: str) -> None:
        if self.torque_off_on_error and self.torque_enabled:
            self.torque_enabled = False
            try:
                self.bus.disable_torque()
                message += " Torque disabled on all motors."
            except BusError as exc:
                # The original fault is the one to report; the failed shutdown is added to it, not hidden.
                message += f" Torque could NOT be disabled on every motor ({exc}): cut the power."
        raise RobotError(message)
