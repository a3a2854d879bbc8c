"""End-effector control: a Cartesian delta per step -> joint targets for a servo arm.

Each step: the reference pose is FK of the last target (or of the measured joints when there is none,
or when the arm is more than `rebase_distance_m` away from it), the delta is bounded (`max_step_m`,
`max_step_rad`) and applied — translation along the base axes, rotation about the end effector's own
axes (as lerobot's EEReferenceAndDelta) — the position is clamped to the workspace box, IK solves within
the joint limits, and `max_relative_target` bounds each joint's move from its measured position.
Input devices (keyboard, gamepad, phone) produce EndEffectorDelta; HIL-SERL's end-effector actions too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apprentice.robots import RobotDefinition
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.kinematics import ArmKinematics, load_kinematics

AXES = ("x", "y", "z", "roll", "pitch", "yaw")


@dataclass(frozen=True)
class EndEffectorDelta:
    """One step's end-effector motion: metres along the base axes, radians about the tool axes, and the
    gripper: -1 close, 0 hold, +1 open (values between scale the step)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    gripper: float = 0.0

    def __post_init__(self) -> None:
        values = [getattr(self, a) for a in (*AXES, "gripper")]
        if not all(math.isfinite(v) for v in values):
            raise TeleopError(f"end-effector delta must be finite, got {self}")
        if not -1.0 <= self.gripper <= 1.0:
            raise TeleopError(f"end-effector delta gripper must be in [-1, 1] (-1 close, +1 open), got {self.gripper}")

    @classmethod
    def from_unit(cls, command: dict[str, float], step_sizes: dict[str, float]) -> EndEffectorDelta:
        """A delta from a device's unit command (e.g. {"x": 1.0} for a key held): each axis times its step."""
        unknown = sorted(set(command) - {*AXES, "gripper"})
        if unknown:
            raise TeleopError(f"unknown end-effector axes {unknown}; axes are {[*AXES, 'gripper']}")
        scaled = {a: float(command.get(a, 0.0)) * float(step_sizes.get(a, 0.0)) for a in AXES}
        return cls(**scaled, gripper=float(command.get("gripper", 0.0)))

    @property
    def translation(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    @property
    def rotation(self) -> np.ndarray:
        return np.array([self.roll, self.pitch, self.yaw])


@dataclass(frozen=True)
class WorkspaceBounds:
    """Axis-aligned box for end-effector positions, metres in the base frame."""

    min_xyz: tuple[float, float, float]
    max_xyz: tuple[float, float, float]

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.min_xyz, dtype=float), np.asarray(self.max_xyz, dtype=float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise TeleopError(f"workspace bounds need 3 finite values each, got min={self.min_xyz} max={self.max_xyz}")
        if np.any(lo > hi):
            raise TeleopError(f"workspace min {list(self.min_xyz)} exceeds max {list(self.max_xyz)} on some axis")

    def clamp(self, position: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """The position inside the box. A reference already outside on an axis may stay where it is on that
        axis (never moving further out), so a start pose outside the box does not jump to its wall."""
        lo, hi = np.asarray(self.min_xyz, dtype=float), np.asarray(self.max_xyz, dtype=float)
        if reference is not None:
            lo, hi = np.minimum(lo, reference), np.maximum(hi, reference)
        return np.clip(position, lo, hi)

    def contains(self, position: np.ndarray) -> bool:
        return bool(np.all(position >= self.min_xyz) and np.all(position <= self.max_xyz))


@dataclass
class EndEffectorConfig:
    """End-effector control settings; the `end_effector:` block of config/kinematics/<arm>.yaml."""

    workspace: WorkspaceBounds = field(default_factory=lambda: WorkspaceBounds((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)))
    step_sizes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(AXES, 0.0))  # per unit command
    max_step_m: float = 0.02  # bound on one step's translation (metres)
    max_step_rad: float = 0.2  # bound on one step's rotation (radians)
    gripper_step: float = 0.05  # radians per step at gripper = +-1
    position_weight: float = 1.0
    orientation_weight: float = 0.01  # soft: a 5-joint arm cannot hold every orientation while it moves
    reference: str = "target"  # "target": build on the last target (no sag drift); "measured": on the arm
    rebase_distance_m: float = 0.03  # the arm this far from the last target: rebuild on the measured pose

    def __post_init__(self) -> None:
        for name in ("max_step_m", "max_step_rad", "gripper_step", "rebase_distance_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise TeleopError(f"end_effector.{name} must be a positive number, got {value}")
        if self.reference not in ("target", "measured"):
            raise TeleopError(f"end_effector.reference must be 'target' or 'measured', got '{self.reference}'")
        unknown = sorted(set(self.step_sizes) - {*AXES})
        if unknown:
            raise TeleopError(f"end_effector.step_sizes: unknown axes {unknown}; axes are {list(AXES)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "end_effector") -> EndEffectorConfig:
        data = dict(data)
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TeleopError(f"{source}: unknown end_effector field(s) {unknown}; known: {sorted(known)}")
        if "workspace" in data:
            box = data["workspace"]
            if not isinstance(box, dict) or set(box) != {"min", "max"}:
                raise TeleopError(f"{source}: end_effector.workspace must be {{min: [x, y, z], max: [x, y, z]}}")
            data["workspace"] = WorkspaceBounds(tuple(box["min"]), tuple(box["max"]))
        if "step_sizes" in data:
            data["step_sizes"] = {k: float(v) for k, v in data["step_sizes"].items()}
        return cls(**data)


@dataclass
class StepReport:
    """What the last step did, for logs and for devices that signal the operator."""

    target_pose: np.ndarray  # 4x4 pose asked of IK (after the workspace clamp)
    clamped_to_workspace: bool
    reached: bool  # IK put the end effector at target_pose (within tolerance)
    position_error: float  # metres still between the solution and target_pose
    limited_by_max_relative_target: bool


def _rotation(rpy: np.ndarray) -> np.ndarray:
    """Rotation matrix of a small rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(rpy))
    if angle < 1e-12:
        return np.eye(3)
    k = rpy / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


class EndEffectorController:
    """Turns EndEffectorDelta steps into joint targets for one arm (see the module docstring)."""

    def __init__(
        self,
        kinematics: ArmKinematics | None = None,
        definition: RobotDefinition | None = None,
        config: EndEffectorConfig | None = None,
        *,
        max_relative_target: float | dict[str, float] | None = None,
    ) -> None:
        if kinematics is None:
            if definition is None:
                raise TeleopError("EndEffectorController needs kinematics or a robot definition")
            kinematics = load_kinematics(definition)
        self.kinematics = kinematics
        kconfig = kinematics.config
        if config is None:
            source = kconfig.source if kconfig else "end_effector"
            config = EndEffectorConfig.from_dict(kconfig.end_effector if kconfig else {}, source)
        self.config = config
        self.definition = definition
        chain = kinematics.joint_names
        if definition is not None:
            self.joint_names = definition.joint_names
            self.gripper = definition.gripper
            extra = [n for n in self.joint_names if n not in chain and n != self.gripper]
            if extra:
                raise TeleopError(
                    f"{definition.type}: joint(s) {extra} are neither in the kinematic chain {chain} nor the gripper"
                )
        else:
            self.gripper = "gripper"
            self.joint_names = [*chain, self.gripper]
        self._chain_index = [self.joint_names.index(n) for n in chain]
        self._gripper_index = self.joint_names.index(self.gripper) if self.gripper in self.joint_names else None
        g_lo = kconfig.gripper_lower if kconfig else -math.inf
        g_hi = kconfig.gripper_upper if kconfig else math.inf
        if definition is not None and self.gripper:
            joint = definition.joints[self._gripper_index]
            g_lo, g_hi = max(g_lo, joint.lower), min(g_hi, joint.upper)
        self.gripper_limits = (g_lo, g_hi)
        mrt = max_relative_target
        if mrt is None and definition is not None:
            mrt = definition.max_relative_target
        if isinstance(mrt, dict):
            self.max_relative_target = np.array([float(mrt.get(n, math.inf)) for n in self.joint_names])
        else:
            self.max_relative_target = np.full(len(self.joint_names), math.inf if mrt is None else float(mrt))
        self._last: np.ndarray | None = None
        self.last_report: StepReport | None = None

    def reset(self) -> None:
        """Forget the last target: the next step builds on the measured joints."""
        self._last = None

    def _full(self, measured_q: np.ndarray, gripper: float | None) -> np.ndarray:
        measured = np.asarray(measured_q, dtype=float)
        n_chain = len(self.kinematics.joint_names)
        if measured.shape == (len(self.joint_names),):
            full = measured.copy()
        elif measured.shape == (n_chain,) and self._gripper_index is not None:
            full = np.zeros(len(self.joint_names))
            full[self._chain_index] = measured
            full[self._gripper_index] = np.nan if gripper is None else gripper
        else:
            raise TeleopError(
                f"measured_q must hold {len(self.joint_names)} radians for {self.joint_names} "
                f"(or the {n_chain} chain joints plus `gripper=`), got shape {measured.shape}"
            )
        if gripper is not None and self._gripper_index is not None:
            full[self._gripper_index] = float(gripper)
        if self._gripper_index is not None and not math.isfinite(full[self._gripper_index]):
            raise TeleopError("the measured gripper position is missing: pass it in measured_q or as gripper=")
        if not np.all(np.isfinite(full)):
            raise TeleopError(f"measured_q must be finite, got {full.tolist()}")
        return full

    def step(self, delta: EndEffectorDelta, measured_q: np.ndarray, gripper: float | None = None) -> np.ndarray:
        """Joint targets (radians, robot joint order incl. the gripper) for one delta from the measured state."""
        measured = self._full(measured_q, gripper)
        k, cfg = self.kinematics, self.config
        q_measured = measured[self._chain_index]
        reference = measured
        if cfg.reference == "target" and self._last is not None:
            drift = np.linalg.norm(k.fk(self._last[self._chain_index])[:3, 3] - k.fk(q_measured)[:3, 3])
            if drift <= cfg.rebase_distance_m:
                reference = self._last
        q_ref = reference[self._chain_index]
        pose = k.fk(q_ref)

        translation, rotation = delta.translation, delta.rotation
        if (norm := np.linalg.norm(translation)) > cfg.max_step_m:
            translation = translation * (cfg.max_step_m / norm)
        if (norm := np.linalg.norm(rotation)) > cfg.max_step_rad:
            rotation = rotation * (cfg.max_step_rad / norm)
        target = np.eye(4)
        target[:3, :3] = pose[:3, :3] @ _rotation(rotation)
        wanted = pose[:3, 3] + translation
        target[:3, 3] = cfg.workspace.clamp(wanted, reference=pose[:3, 3])
        clamped = bool(np.linalg.norm(target[:3, 3] - wanted) > 1e-12)

        result = k.solve(target, q_ref, cfg.position_weight, cfg.orientation_weight)
        goal = reference.copy()
        goal[self._chain_index] = result.q
        if self._gripper_index is not None:
            i = self._gripper_index
            goal[i] = np.clip(reference[i] + delta.gripper * cfg.gripper_step, *self.gripper_limits)
        bounded = measured + np.clip(goal - measured, -self.max_relative_target, self.max_relative_target)
        limited = bool(np.any(np.abs(bounded - goal) > 1e-12))
        self._last = bounded
        self.last_report = StepReport(target, clamped, result.reached, result.position_error, limited)
        return bounded.copy()
