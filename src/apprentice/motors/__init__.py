"""Servo buses over the vendor SDKs (Feetech, Dynamixel), LeRobot-compatible calibration, and the
wire-faithful virtual servo bus. No ROS imports."""

from apprentice.motors.bus import BusHealth, Motor, MotorsBus
from apprentice.motors.calibration import (
    MotorCalibration,
    MotorNormMode,
    load_calibration,
    normalize,
    radians_to_ticks,
    save_calibration,
    ticks_to_radians,
    unnormalize,
)
from apprentice.motors.dynamixel import DynamixelBus
from apprentice.motors.errors import BusError
from apprentice.motors.feetech import FeetechBus
from apprentice.motors.sim_bus import VirtualServoBus
from apprentice.motors.sim_motor import Faults, VirtualMotor
from apprentice.motors.tables import MODELS, ModelSpec, model_spec

BUS_CLASSES: dict[str, type[MotorsBus]] = {"feetech": FeetechBus, "dynamixel": DynamixelBus}

__all__ = [
    "BUS_CLASSES",
    "MODELS",
    "BusError",
    "BusHealth",
    "DynamixelBus",
    "Faults",
    "FeetechBus",
    "ModelSpec",
    "Motor",
    "MotorCalibration",
    "MotorNormMode",
    "MotorsBus",
    "VirtualMotor",
    "VirtualServoBus",
    "load_calibration",
    "model_spec",
    "normalize",
    "radians_to_ticks",
    "save_calibration",
    "ticks_to_radians",
    "unnormalize",
]
