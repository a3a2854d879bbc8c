"""Two arms as one robot (lerobot's bi_so101_follower / bi_so101_leader): two buses, prefixed joints.

A bimanual YAML names its two arms' definitions (`arms: {left: so101_follower, right: so101_follower}`);
joints are `left_<joint>` then `right_<joint>`, so one `joint_states` / `commands` vector of 12 values
drives both. Calibration stays per arm, in lerobot's files for the bimanual id `<id>`: the arm's own
file for id `<id>_left` / `<id>_right`, e.g. `<root>/robots/so_follower/<id>_left.json` (leaders under
teleoperators/so_leader/; lerobot < 0.4.3's `robots/so101_follower/` is the fallback when reading).
`BimanualArm` owns two `Arm`s and answers what the driver and teleop nodes ask of one arm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apprentice.motors import BusError, BusHealth, MotorCalibration
from apprentice.robots.arm import Arm
from apprentice.robots.calibrate import default_calibration_path, find_calibration_file
from apprentice.robots.definition import ROLES, RobotDefinition, load_robot, read_robot_yaml
from apprentice.robots.errors import RobotError

SIDES = ("left", "right")


@dataclass
class BimanualDefinition:
    type: str
    arms: dict[str, RobotDefinition]  # side -> the arm's own definition, left then right
    role: str = "follower"
    source: str = ""
    joint_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        where = self.source or self.type
        if list(self.arms) != list(SIDES):
            raise RobotError(f"{where}: `arms` must name exactly {list(SIDES)} (in that order), got {list(self.arms)}")
        if self.role not in ROLES:
            raise RobotError(f"{where}: role must be one of {ROLES}, got '{self.role}'")
        wrong = [f"{side}: {d.type} is a {d.role}" for side, d in self.arms.items() if d.role != self.role]
        if wrong:
            raise RobotError(f"{where}: both arms must be {self.role}s ({'; '.join(wrong)})")
        self.joint_names = [f"{side}_{name}" for side, d in self.arms.items() for name in d.joint_names]

    def arm_ids(self, robot_id: str) -> dict[str, str]:
        """Each arm's own id, as lerobot's bi_so_follower / bi_so_leader give them: `<id>_left`, `<id>_right`."""
        return {side: f"{robot_id}_{side}" for side in self.arms}

    def calibration_paths(self, robot_id: str) -> dict[str, Path]:
        """Where each arm's file is written: the newest lerobot's file for the arm's own id."""
        return {side: default_calibration_path(self.arms[side], i) for side, i in self.arm_ids(robot_id).items()}

    def find_calibration_files(self, robot_id: str) -> dict[str, Path | None]:
        """Each arm's existing file (newest lerobot layout first, then lerobot < 0.4.3's), or None."""
        return {side: find_calibration_file(self.arms[side], i) for side, i in self.arm_ids(robot_id).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> BimanualDefinition:
        where = source or "bimanual robot definition"
        unknown = sorted(set(data) - {"type", "role", "arms"})
        if unknown:
            raise RobotError(f"{where}: unknown field(s) {unknown}; a bimanual robot has type, role and arms")
        if not isinstance(data.get("arms"), dict) or "type" not in data:
            raise RobotError(f"{where}: needs `type` and `arms: {{left: <robot type>, right: <robot type>}}`")
        arms = {side: load_robot(data["arms"][side]) for side in data["arms"]}
        return cls(type=data["type"], arms=arms, role=data.get("role", "follower"), source=source)


def load_definition(type_or_path: str | Path) -> RobotDefinition | BimanualDefinition:
    """Any robot YAML: one arm (RobotDefinition) or two (`arms:` -> BimanualDefinition)."""
    path, data = read_robot_yaml(type_or_path)
    if "arms" in data:
        return BimanualDefinition.from_dict(data, source=str(path))
    return RobotDefinition.from_dict(data, source=str(path))


class BimanualArm:
    """Two Arms behind the Arm interface the nodes use; positions are left's joints, then right's."""

    def __init__(
        self,
        definition: BimanualDefinition,
        ports: list[str],
        *,
        calibration: dict[str, dict[str, MotorCalibration] | None] | None = None,
        max_relative_target: float | dict[str, float] | None = None,
        torque_off_on_error: bool = True,
        num_retry: int = 3,
    ) -> None:
        if len(ports) != len(SIDES):
            raise RobotError(
                f"{definition.type}: needs two ports (left,right), e.g. /dev/ttyACM0,/dev/ttyACM1; got {ports}"
            )
        self.definition = definition
        self.joint_names = definition.joint_names
        calibration = calibration or {}
        self.arms = {
            side: Arm(
                d,
                port,
                calibration=calibration.get(side),
                max_relative_target=max_relative_target,
                torque_off_on_error=torque_off_on_error,
                num_retry=num_retry,
            )
            for (side, d), port in zip(definition.arms.items(), ports)
        }
        self.wheel_names: list[str] = []
        self._sizes = [len(a.joint_names) for a in self.arms.values()]

    @property
    def port(self) -> str:
        return ",".join(a.port for a in self.arms.values())

    @property
    def torque_enabled(self) -> bool:
        return all(a.torque_enabled for a in self.arms.values())

    @property
    def present(self) -> np.ndarray:
        return np.concatenate([a.present for a in self.arms.values()])

    @property
    def health(self) -> BusHealth:
        """Both buses' counters added up; alarms and the last error name the side."""
        total = BusHealth()
        for side, arm in self.arms.items():
            h = arm.health
            total.transactions += h.transactions
            total.retries += h.retries
            total.failures += h.failures
            total.last_error = f"{side}: {h.last_error}" if h.last_error else total.last_error
            total.hardware_errors.update({f"{side}_{m}": e for m, e in h.hardware_errors.items()})
        return total

    def connect(self, configure: bool = True, enable_torque: bool | None = None) -> None:
        connected: list[Arm] = []
        try:
            for arm in self.arms.values():
                arm.connect(configure=configure, enable_torque=enable_torque)
                connected.append(arm)
        except BusError:
            for arm in connected:  # never leave one arm holding torque while the other is missing
                arm.disconnect(disable_torque=True)
            raise

    def disconnect(self, disable_torque: bool = True) -> None:
        errors = []
        for arm in self.arms.values():
            try:
                arm.disconnect(disable_torque=disable_torque)
            except BusError as exc:
                errors.append(str(exc))
        if errors:
            raise RobotError(" | ".join(errors))

    def set_torque(self, enabled: bool) -> None:
        for arm in self.arms.values():
            arm.set_torque(enabled)

    def read_positions(self) -> np.ndarray:
        return np.concatenate([a.read_positions() for a in self.arms.values()])

    def read_velocities(self) -> np.ndarray:
        return np.concatenate([a.read_velocities() for a in self.arms.values()])

    def read_positions_and_velocities(self) -> tuple[np.ndarray, np.ndarray]:
        pairs = [a.read_positions_and_velocities() for a in self.arms.values()]
        return np.concatenate([p for p, _ in pairs]), np.concatenate([v for _, v in pairs])

    def send_positions(self, goal: np.ndarray) -> np.ndarray:
        goal = np.asarray(goal, dtype=float)
        if goal.shape != (len(self.joint_names),):
            raise RobotError(
                f"{self.definition.type}: command must be {len(self.joint_names)} positions for "
                f"{self.joint_names}, got {goal.tolist()}"
            )
        parts = np.split(goal, np.cumsum(self._sizes)[:-1])
        return np.concatenate([a.send_positions(p) for a, p in zip(self.arms.values(), parts)])
