"""Forward and inverse kinematics of a servo arm from its URDF (config/urdf/), through pinocchio.

One YAML per arm in config/kinematics/ names the URDF, the end-effector frame, the robot types it
serves, the gripper's range and the end-effector control settings. `load_kinematics("so101_follower")`
finds it by robot type, `load_kinematics("omx")` by its own name, or pass a path or a RobotDefinition
(whose joint limits then tighten the URDF's).

Units: joint positions in radians as on our topics (LeRobot's calibration middle = 0), poses as 4x4
matrices in metres in the URDF's base frame (x forward, z up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from apprentice.resources import config_path
from apprentice.robots import RobotDefinition
from apprentice.teleop.errors import TeleopError

try:
    import pinocchio as pin
except ImportError:  # the teleop extra is optional for pip users; loading a model says how to get it
    pin = None


@dataclass(frozen=True)
class KinematicsConfig:
    """One arm's kinematics file (config/kinematics/<name>.yaml)."""

    name: str
    urdf: Path
    frame: str = "gripper_frame_link"  # end-effector frame in the URDF (lerobot's target_frame_name)
    base_frame: str = "base_link"
    robot_types: tuple[str, ...] = ()
    gripper_lower: float = -math.inf  # radians; the gripper is not part of the chain
    gripper_upper: float = math.inf
    end_effector: dict[str, Any] = field(default_factory=dict)  # EndEffectorConfig fields
    source: str = ""

    @classmethod
    def from_file(cls, path: Path) -> KinematicsConfig:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise TeleopError(f"{path}: cannot read kinematics file ({exc})") from None
        known = {"urdf", "frame", "base_frame", "robot_types", "gripper", "end_effector"}
        if not isinstance(data, dict) or "urdf" not in data:
            raise TeleopError(f"{path}: must be a mapping with at least `urdf:` (path relative to config/)")
        unknown = sorted(set(data) - known)
        if unknown:
            raise TeleopError(f"{path}: unknown field(s) {unknown}; known: {sorted(known)}")
        urdf = Path(data["urdf"])
        if not urdf.is_absolute():
            urdf = config_path(str(urdf))
        gripper = data.get("gripper") or {}
        return cls(
            name=path.stem,
            urdf=urdf,
            frame=str(data.get("frame", "gripper_frame_link")),
            base_frame=str(data.get("base_frame", "base_link")),
            robot_types=tuple(data.get("robot_types") or ()),
            gripper_lower=float(gripper.get("lower", -math.inf)),
            gripper_upper=float(gripper.get("upper", math.inf)),
            end_effector=dict(data.get("end_effector") or {}),
            source=str(path),
        )


@dataclass
class IKResult:
    q: np.ndarray  # chain joint positions (radians), always within the joint limits
    position_error: float  # metres between the reached and the asked end-effector position
    orientation_error: float  # radians between the reached and the asked orientation
    iterations: int
    reached: bool  # position_error within position_tolerance (1 mm); False = the nearest reachable pose


class ArmKinematics:
    """FK and damped-least-squares IK of one URDF chain, with joint limits enforced at every iteration."""

    def __init__(
        self,
        urdf: str | Path,
        frame: str = "gripper_frame_link",
        *,
        lower: dict[str, float] | None = None,
        upper: dict[str, float] | None = None,
        config: KinematicsConfig | None = None,
        max_iterations: int = 100,
        position_tolerance: float = 1e-3,
        damping: float = 1e-3,
        restarts: int = 8,
    ) -> None:
        if pin is None:
            raise TeleopError("end-effector control needs pinocchio: pip install 'apprentice[teleop]' (or `pin`)")
        urdf = Path(urdf)
        if not urdf.is_file():
            raise TeleopError(f"URDF {urdf} does not exist; the shipped ones are in config/urdf/")
        try:
            self.model = pin.buildModelFromUrdf(str(urdf))
        except (RuntimeError, ValueError) as exc:
            raise TeleopError(f"{urdf}: not a loadable URDF ({exc})") from None
        if not self.model.existFrame(frame):
            frames = [f.name for f in self.model.frames]
            raise TeleopError(f"{urdf}: no frame '{frame}'; frames are {frames}")
        if self.model.nq != self.model.nv:
            raise TeleopError(f"{urdf}: only revolute/prismatic chains are supported (nq != nv)")
        self.urdf = urdf
        self.frame = frame
        self.config = config
        self.data = self.model.createData()
        self.frame_id = self.model.getFrameId(frame)
        self.joint_names: list[str] = list(self.model.names)[1:]
        self.lower = np.array(self.model.lowerPositionLimit, dtype=float)
        self.upper = np.array(self.model.upperPositionLimit, dtype=float)
        for i, name in enumerate(self.joint_names):
            # The robot definition may narrow the URDF's range (never widen it: the URDF is the mechanism).
            self.lower[i] = max(self.lower[i], (lower or {}).get(name, -math.inf))
            self.upper[i] = min(self.upper[i], (upper or {}).get(name, math.inf))
            if self.lower[i] > self.upper[i]:
                raise TeleopError(f"{urdf}: joint '{name}' has an empty range [{self.lower[i]}, {self.upper[i]}]")
        self.max_iterations = max_iterations
        self.position_tolerance = position_tolerance
        self.damping = damping
        self.restarts = restarts

    def _check(self, q: np.ndarray, what: str) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (len(self.joint_names),) or not np.all(np.isfinite(q)):
            raise TeleopError(
                f"{self.urdf.name}: {what} must be {len(self.joint_names)} finite radians for "
                f"{self.joint_names}, got {np.asarray(q).tolist()}"
            )
        return q

    def fk(self, q: np.ndarray) -> np.ndarray:
        """4x4 pose of the end-effector frame in the base frame (metres) at joint positions q (radians)."""
        q = self._check(q, "q")
        pin.framesForwardKinematics(self.model, self.data, q)
        return self.data.oMf[self.frame_id].homogeneous.copy()

    def ik(
        self,
        target: np.ndarray,
        q_seed: np.ndarray,
        position_weight: float = 1.0,
        orientation_weight: float = 0.01,
    ) -> np.ndarray:
        """Joint positions (within limits) putting the end effector at `target` (4x4), starting from q_seed.

        Weights as lerobot's RobotKinematics names them: the heavier-weighted task (position by default) is
        met first, the other as well as the remaining joint freedom allows; a weight of 0 drops its task.
        An unreachable target gives the nearest reachable pose; `solve` also says how far it is.
        """
        return self.solve(target, q_seed, position_weight, orientation_weight).q

    def solve(
        self,
        target: np.ndarray,
        q_seed: np.ndarray,
        position_weight: float = 1.0,
        orientation_weight: float = 0.01,
    ) -> IKResult:
        target = np.asarray(target, dtype=float)
        if target.shape != (4, 4) or not np.all(np.isfinite(target)):
            raise TeleopError(f"{self.urdf.name}: IK target must be a finite 4x4 pose, got shape {target.shape}")
        if position_weight < 0 or orientation_weight < 0 or position_weight + orientation_weight == 0:
            raise TeleopError(
                f"IK weights must be >= 0 and not both 0, got position_weight={position_weight}, "
                f"orientation_weight={orientation_weight}"
            )
        goal = pin.SE3(target[:3, :3], target[:3, 3])
        weights = np.array([position_weight] * 3 + [orientation_weight] * 3)
        seed = np.clip(self._check(q_seed, "q_seed"), self.lower, self.upper)
        best = self._descend(seed, goal, weights)
        # A local solver can stall against a joint limit or in another branch; a few fixed restarts (the
        # same every call, so the result is deterministic) find the pose when it is reachable at all.
        rng = np.random.default_rng(0)
        for _ in range(self.restarts if not best.reached else 0):
            start = np.clip(rng.uniform(self.lower, self.upper), -math.pi, math.pi)
            candidate = self._descend(start, goal, weights)
            if candidate.position_error < best.position_error:
                best = candidate
            if best.reached:
                break
        return best

    def _descend(self, q: np.ndarray, goal: pin.SE3, weights: np.ndarray) -> IKResult:
        # Task priority: the heavier-weighted task (position, by default) is solved first and the other
        # only in the joints' remaining freedom. A 5-joint arm cannot hold every orientation while it
        # moves; a soft weighted sum would then miss the position by up to ~0.4 mm (measured on the
        # Koch), task priority reaches it exactly and still turns the tool as close as it can.
        position, orientation = slice(0, 3), slice(3, 6)
        primary, secondary = (position, orientation) if weights[0] >= weights[3] else (orientation, position)
        ratio = float(weights[secondary][0] / weights[primary][0])
        if ratio == 0:
            secondary = None
        n = len(q)
        iterations = 0
        for iterations in range(1, self.max_iterations + 1):  # noqa: B007 (reported below)
            error, jacobian = self._error_and_jacobian(q, goal)
            # Active set: a joint at a limit that the step would push further out is frozen and the step
            # re-solved without it, so the other joints still make progress (plain clipping stalls there).
            free = np.ones(n, dtype=bool)
            for _ in range(n):
                step = self._step(jacobian, error, free, primary, secondary, ratio)
                blocked = free & (((q <= self.lower) & (step < 0)) | ((q >= self.upper) & (step > 0)))
                if not blocked.any():
                    break
                free &= ~blocked
            # Done when the primary task is met and the secondary one has stopped improving (a 5-joint
            # arm rarely meets both exactly).
            if np.linalg.norm(error[primary]) < 1e-6 and np.abs(step).max() < 1e-5:
                break
            # A bounded step keeps the linearisation honest far from the target (0.2 rad ~ 10 degrees).
            largest = np.abs(step).max()
            if largest > 0.2:
                step *= 0.2 / largest
            q_next = np.clip(q + step, self.lower, self.upper)
            if np.abs(q_next - q).max() < 1e-10:
                break
            q = q_next
        error, _ = self._error_and_jacobian(q, goal)
        position_error = float(np.linalg.norm(error[:3]))
        return IKResult(
            q=q,
            position_error=position_error,
            orientation_error=float(np.linalg.norm(error[3:])),
            iterations=iterations,
            reached=position_error <= self.position_tolerance,
        )

    def _step(
        self,
        jacobian: np.ndarray,
        error: np.ndarray,
        free: np.ndarray,
        primary: slice,
        secondary: slice | None,
        ratio: float,
    ) -> np.ndarray:
        """Damped least-squares step for the primary task, plus the secondary one projected into its null space.

        The secondary task is scaled by `ratio` (its weight over the primary's) against the same damping,
        so a light orientation weight turns the tool gently instead of swinging the arm through its range.
        """
        J1 = jacobian[primary][:, free]
        inverse = J1.T @ np.linalg.inv(J1 @ J1.T + self.damping**2 * np.eye(J1.shape[0]))
        dq = inverse @ error[primary]
        if secondary is not None:
            null = np.eye(J1.shape[1]) - inverse @ J1
            J2 = jacobian[secondary][:, free]
            J2n = ratio * (J2 @ null)
            rest = ratio * (error[secondary] - J2 @ dq)
            dq = dq + null @ (J2n.T @ np.linalg.solve(J2n @ J2n.T + self.damping**2 * np.eye(J2.shape[0]), rest))
        step = np.zeros(len(free))
        step[free] = dq
        return step

    def _error_and_jacobian(self, q: np.ndarray, goal: pin.SE3) -> tuple[np.ndarray, np.ndarray]:
        """6-vector error (position, rotation vector; base-frame axes) and its 6xN Jacobian."""
        jacobian = pin.computeFrameJacobian(self.model, self.data, q, self.frame_id, pin.LOCAL_WORLD_ALIGNED)
        pin.updateFramePlacement(self.model, self.data, self.frame_id)
        current = self.data.oMf[self.frame_id]
        rotation_error = current.rotation @ pin.log3(current.rotation.T @ goal.rotation)
        return np.concatenate([goal.translation - current.translation, rotation_error]), jacobian


def _kinematics_files() -> list[Path]:
    return sorted(config_path("kinematics").glob("*.yaml"))


def find_kinematics_config(robot: str) -> KinematicsConfig:
    """The kinematics file for a robot type (listed in its robot_types), a kinematics name, or a path."""
    path = Path(robot)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise TeleopError(f"kinematics file {path} does not exist")
        return KinematicsConfig.from_file(path)
    configs = [KinematicsConfig.from_file(p) for p in _kinematics_files()]
    for config in configs:
        if robot == config.name or robot in config.robot_types:
            return config
    known = sorted({c.name for c in configs} | {t for c in configs for t in c.robot_types})
    raise TeleopError(
        f"no kinematics for robot '{robot}'; known: {known} "
        "(add config/kinematics/<arm>.yaml with urdf, frame and robot_types, or pass a YAML path)"
    )


def load_kinematics(robot: str | Path | RobotDefinition) -> ArmKinematics:
    """ArmKinematics for a robot type, kinematics name, kinematics YAML path, or robot definition."""
    if isinstance(robot, RobotDefinition):
        config = find_kinematics_config(robot.type)
        chain = {j.name: j for j in robot.joints}
        kinematics = ArmKinematics(
            config.urdf,
            config.frame,
            lower={n: j.lower for n, j in chain.items()},
            upper={n: j.upper for n, j in chain.items()},
            config=config,
        )
        missing = sorted(set(kinematics.joint_names) - set(chain))
        if missing:
            raise TeleopError(
                f"{config.urdf.name}: chain joint(s) {missing} are not joints of {robot.type} "
                f"({robot.joint_names}); the URDF's joint names must be the robot's"
            )
        return kinematics
    config = find_kinematics_config(str(robot))
    return ArmKinematics(config.urdf, config.frame, config=config)
