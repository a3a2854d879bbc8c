"""Robot definitions: one YAML file per arm in config/robots/ (joints, motor ids/models, limits, setup).

Adding a robot is adding a YAML file; `load_robot("so101_follower")` finds it by type, and
`load_robot("path/to/my_arm.yaml")` loads any file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from apprentice.motors import BUS_CLASSES, Motor, MotorNormMode, model_spec
from apprentice.resources import config_path
from apprentice.robots.errors import RobotError

ROLES = ("follower", "leader")


@dataclass(frozen=True)
class Joint:
    name: str
    id: int
    model: str
    norm_mode: MotorNormMode = MotorNormMode.DEGREES
    lower: float = -math.inf  # radians; applied on top of the calibrated range
    upper: float = math.inf


@dataclass(frozen=True)
class ShadowMotor:
    """A second motor on a joint (Interbotix shoulder/elbow): it mirrors `mirrors` in hardware.

    Its Secondary_ID is set to the primary's id, so it executes every goal written to the primary without
    answering, and its Drive_Mode is inverted because it is mounted facing the primary. It is calibrated
    and torqued like any motor but is not a joint: commands and joint states name the primary only.
    """

    name: str
    id: int
    model: str
    mirrors: str


@dataclass(frozen=True)
class Wheel:
    """A wheel motor in velocity mode (LeKiwi's base): commanded in rad/s, never a joint."""

    name: str
    id: int
    model: str


@dataclass
class BaseGeometry:
    """Omniwheel base geometry: LeKiwi's numbers by default (lerobot `LeKiwi._body_to_wheel_raw`)."""

    wheel_radius: float = 0.05  # m
    base_radius: float = 0.125  # m, centre of the base to each wheel's contact point
    # Direction of each wheel's rolling, degrees from the base's x axis (forward), in `wheels` order:
    # LeKiwi's left/back/right wheels sit at 240/0/120 degrees and roll 90 degrees from that.
    wheel_angles_deg: tuple[float, ...] = (150.0, -90.0, 30.0)
    max_wheel_speed: float = 3000 * 2 * math.pi / 4096  # rad/s; LeKiwi's max_raw = 3000 steps/s

    def __post_init__(self) -> None:
        if self.wheel_radius <= 0 or self.base_radius <= 0 or self.max_wheel_speed <= 0:
            raise RobotError(
                f"base: wheel_radius ({self.wheel_radius}), base_radius ({self.base_radius}) and "
                f"max_wheel_speed ({self.max_wheel_speed}) must be positive"
            )


@dataclass
class RobotDefinition:
    type: str
    vendor: str
    joints: list[Joint]
    role: str = "follower"
    baudrate: int = 1_000_000
    gripper: str | None = None
    full_turn_joints: list[str] = field(default_factory=list)
    max_relative_target: float | dict[str, float] | None = None
    calibration_operating_mode: int = 0
    calibration_drive_modes: dict[str, int] = field(default_factory=dict)
    # motor, "all" (joints and shadows) or "wheels" -> register: value
    configure: dict[str, dict[str, int]] = field(default_factory=dict)
    # Leader joints kept under torque at a goal in LeRobot's normalized units (Koch's spring-back trigger).
    torque_holds: dict[str, float] = field(default_factory=dict)
    # OMX arms come calibrated from ROBOTIS: calibrating writes the factory calibration (homing offsets
    # below, else 0; the whole 0..4095 range) instead of recording one, as lerobot's omx_* do.
    calibration_factory: bool = False
    calibration_homing_offsets: dict[str, int] = field(default_factory=dict)
    shadows: list[ShadowMotor] = field(default_factory=list)
    wheels: list[Wheel] = field(default_factory=list)
    base: BaseGeometry | None = None
    # lerobot's calibration folder for this arm: its class's `name` (SO-100/101 share `so_follower` /
    # `so_leader` since lerobot 0.4.3); "" = the type, which is lerobot's name for every other arm.
    calibration_name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or self.type
        self.calibration_name = self.calibration_name or self.type
        name = self.calibration_name
        if not isinstance(name, str) or name in (".", "..") or any(c in name for c in "/\\"):
            raise RobotError(
                f"{where}: calibration_name must be one folder name (lerobot's robot name, e.g. so_follower), "
                f"got {name!r}"
            )
        if self.vendor not in BUS_CLASSES:
            raise RobotError(f"{where}: vendor must be one of {sorted(BUS_CLASSES)}, got '{self.vendor}'")
        if self.role not in ROLES:
            raise RobotError(f"{where}: role must be one of {ROLES}, got '{self.role}'")
        if not self.joints:
            raise RobotError(f"{where}: needs at least one joint")
        names = self.motor_names
        every = [*self.joints, *self.shadows, *self.wheels]
        if len(set(names)) != len(names) or len({m.id for m in every}) != len(every):
            raise RobotError(f"{where}: motor names and ids must be unique")
        for motor in every:
            if model_spec(motor.model).vendor != self.vendor:
                kind = "joint" if isinstance(motor, Joint) else "motor"
                raise RobotError(f"{where}: {kind} '{motor.name}' model {motor.model} is not a {self.vendor} servo")
        if self.shadows and self.vendor != "dynamixel":
            raise RobotError(f"{where}: shadow motors need Dynamixel's Secondary_ID; {self.vendor} has none")
        bad_shadows = [s.name for s in self.shadows if s.mirrors not in self.joint_names]
        if bad_shadows:
            raise RobotError(f"{where}: shadow motor(s) {bad_shadows} must mirror one of the joints {self.joint_names}")
        if self.wheels and (self.base is None or len(self.base.wheel_angles_deg) != len(self.wheels)):
            raise RobotError(f"{where}: {len(self.wheels)} wheels need a `base` with as many wheel_angles_deg")
        referenced = [
            *self.full_turn_joints,
            *self.torque_holds,
            *self.calibration_drive_modes,
            *self.calibration_homing_offsets,
            *(k for k in self.configure if k not in ("all", "wheels")),
        ]
        if self.gripper:
            referenced.append(self.gripper)
        if isinstance(self.max_relative_target, dict):
            referenced += list(self.max_relative_target)
        unknown = sorted(set(referenced) - set(names))
        if unknown:
            raise RobotError(f"{where}: unknown joint(s) {unknown}; motors are {names}")

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def wheel_names(self) -> list[str]:
        return [w.name for w in self.wheels]

    @property
    def motor_names(self) -> list[str]:
        """Every motor on the bus: joints, then shadow motors, then wheels (a calibration file's keys)."""
        return [*self.joint_names, *(s.name for s in self.shadows), *self.wheel_names]

    def motors(self) -> dict[str, Motor]:
        motors = {j.name: Motor(j.id, j.model, j.norm_mode) for j in self.joints}
        motors.update({s.name: Motor(s.id, s.model, self._joint(s.mirrors).norm_mode) for s in self.shadows})
        motors.update({w.name: Motor(w.id, w.model, MotorNormMode.RANGE_M100_100) for w in self.wheels})
        return motors

    def _joint(self, name: str) -> Joint:
        return next(j for j in self.joints if j.name == name)

    def registers_to_configure(self) -> list[tuple[str, str, int]]:
        """(motor, register, value) in write order: the `all` block first, then per-motor overrides."""
        writes = []
        wheels = set(self.wheel_names)
        for joint in self.motor_names:
            group = "wheels" if joint in wheels else "all"  # wheels have their own group: another mode
            values = {**self.configure.get(group, {}), **self.configure.get(joint, {})}
            writes += [(joint, register, int(value)) for register, value in values.items()]
        return writes

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> RobotDefinition:
        where = source or "robot definition"
        known = {
            "type",
            "vendor",
            "role",
            "baudrate",
            "joints",
            "gripper",
            "full_turn_joints",
            "max_relative_target",
            "calibration",
            "configure",
            "torque_holds",
            "shadows",
            "wheels",
            "base",
            "calibration_name",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise RobotError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            joints = [
                Joint(
                    name=j["name"],
                    id=int(j["id"]),
                    model=j["model"],
                    norm_mode=MotorNormMode(j.get("norm_mode", "degrees")),
                    lower=float(j.get("lower", -math.inf)),
                    upper=float(j.get("upper", math.inf)),
                )
                for j in data["joints"]
            ]
            calibration = data.get("calibration") or {}
            shadows = [
                ShadowMotor(name=m["name"], id=int(m["id"]), model=m["model"], mirrors=m["mirrors"])
                for m in data.get("shadows") or []
            ]
            wheels = [Wheel(name=m["name"], id=int(m["id"]), model=m["model"]) for m in data.get("wheels") or []]
            base = data.get("base")
            if base is not None:
                base = dict(base)
                if "wheel_angles_deg" in base:
                    base["wheel_angles_deg"] = tuple(float(a) for a in base["wheel_angles_deg"])
                base = BaseGeometry(**base)
            return cls(
                type=data["type"],
                vendor=data["vendor"],
                joints=joints,
                role=data.get("role", "follower"),
                baudrate=int(data.get("baudrate", 1_000_000)),
                gripper=data.get("gripper"),
                full_turn_joints=list(data.get("full_turn_joints") or []),
                max_relative_target=data.get("max_relative_target"),
                calibration_operating_mode=int(calibration.get("operating_mode", 0)),
                calibration_drive_modes=dict(calibration.get("drive_modes") or {}),
                configure=dict(data.get("configure") or {}),
                torque_holds={k: float(v) for k, v in (data.get("torque_holds") or {}).items()},
                calibration_factory=bool(calibration.get("factory", False)),
                calibration_homing_offsets={k: int(v) for k, v in (calibration.get("homing_offsets") or {}).items()},
                shadows=shadows,
                wheels=wheels,
                base=base,
                calibration_name=data.get("calibration_name") or "",
                source=source,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RobotError(f"{where}: invalid robot definition ({type(exc).__name__}: {exc})") from None


def load_robot(type_or_path: str | Path) -> RobotDefinition:
    """A robot definition by type name (config/robots/<type>.yaml) or by YAML file path."""
    path, data = read_robot_yaml(type_or_path)
    if "arms" in data:
        sides = ", ".join(f"{side}: {arm}" for side, arm in dict(data["arms"]).items())
        raise RobotError(
            f"{path} is a two-arm robot ({sides}); calibrate or open each arm by its own type "
            "(its files are <id>_left / <id>_right), or use apprentice.robots.load_definition"
        )
    return RobotDefinition.from_dict(data, source=str(path))


def read_robot_yaml(type_or_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The path and mapping of config/robots/<type>.yaml or of a YAML file path."""
    path = Path(type_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_path("robots", f"{type_or_path}.yaml")
    if not path.is_file():
        available = sorted(p.stem for p in config_path("robots").glob("*.yaml"))
        raise RobotError(f"no robot definition {path}; available types: {available} (or pass a YAML path)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RobotError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RobotError(f"{path} must hold a mapping with type, vendor and joints")
    return path, data
