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
    configure: dict[str, dict[str, int]] = field(default_factory=dict)  # joint or "all" -> register: value
    # Leader joints kept under torque at a goal in LeRobot's normalized units (Koch's spring-back trigger).
    torque_holds: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or self.type
        if self.vendor not in BUS_CLASSES:
            raise RobotError(f"{where}: vendor must be one of {sorted(BUS_CLASSES)}, got '{self.vendor}'")
        if self.role not in ROLES:
            raise RobotError(f"{where}: role must be one of {ROLES}, got '{self.role}'")
        if not self.joints:
            raise RobotError(f"{where}: needs at least one joint")
        names = self.joint_names
        if len(set(names)) != len(names) or len({j.id for j in self.joints}) != len(self.joints):
            raise RobotError(f"{where}: joint names and ids must be unique")
        for joint in self.joints:
            if model_spec(joint.model).vendor != self.vendor:
                raise RobotError(f"{where}: joint '{joint.name}' model {joint.model} is not a {self.vendor} servo")
        referenced = [
            *self.full_turn_joints,
            *self.torque_holds,
            *self.calibration_drive_modes,
            *(k for k in self.configure if k != "all"),
        ]
        if self.gripper:
            referenced.append(self.gripper)
        if isinstance(self.max_relative_target, dict):
            referenced += list(self.max_relative_target)
        unknown = sorted(set(referenced) - set(names))
        if unknown:
            raise RobotError(f"{where}: unknown joint(s) {unknown}; joints are {names}")

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    def motors(self) -> dict[str, Motor]:
        return {j.name: Motor(j.id, j.model, j.norm_mode) for j in self.joints}

    def registers_to_configure(self) -> list[tuple[str, str, int]]:
        """(joint, register, value) in write order: the `all` block first, then per-joint overrides."""
        writes = []
        for joint in self.joint_names:
            values = {**self.configure.get("all", {}), **self.configure.get(joint, {})}
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
                source=source,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RobotError(f"{where}: invalid robot definition ({type(exc).__name__}: {exc})") from None


def load_robot(type_or_path: str | Path) -> RobotDefinition:
    """A robot definition by type name (config/robots/<type>.yaml) or by YAML file path."""
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
    return RobotDefinition.from_dict(data, source=str(path))
