"""Device maps (config/teleop/*.yaml): which device input drives which joint or end-effector axis.

A device names its raw inputs (a key `w`, a stick `left_x`, the phone's `beta`); the map turns those
names into motion. Two kinds of input: *velocity* inputs (sticks, held keys; -1..1, scaled per second)
and *position* inputs (the phone's angles since the dead-man was pressed, radians; scaled per radian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from apprentice.teleop.errors import TeleopError

MODES = ("joint", "end_effector")
EE_AXES = ("x", "y", "z", "roll", "pitch", "yaw")
EPISODE_ACTIONS = ("start", "stop", "rerecord", "discard")
INTERVENTION_MODES = ("hold", "toggle")


@dataclass(frozen=True)
class AxisBinding:
    """One input driving one target: `target += scale * value * dt` (velocity input) or
    `target += scale * (value - previous value)` (position input)."""

    input: str
    target: str  # a joint name (joint mode), an end-effector axis (x..yaw), or `gripper`
    scale: float  # rad/s or m/s per unit of a velocity input; rad/rad or m/rad for a position input
    deadzone: float = 0.0  # |value| below this reads as 0; the rest is rescaled to keep full range


@dataclass
class DeviceMap:
    """A whole device map; fields are the YAML's top-level keys."""

    mode: str = "joint"
    axes: list[AxisBinding] = field(default_factory=list)
    gripper_open: str = ""  # held button/key -> gripper opens (+1); in joint mode at gripper_speed rad/s
    gripper_close: str = ""
    gripper_speed: float = 1.5  # rad/s of the gripper joint in joint mode
    deadman: str = ""  # button that must be held for any motion ("" = none)
    intervention: str = ""  # button whose state is published on teleop/intervention
    intervention_mode: str = "hold"  # hold: true while held; toggle: each press flips it
    episode: dict[str, str] = field(default_factory=dict)  # start/stop/rerecord/discard -> button
    timeout_s: float = 0.5  # no sign of life from the device for this long: hold (publish nothing)
    # Raw device input -> input name: {"axes": {code: name}, "buttons": {code: name}}; a leading "-" on a
    # name inverts that axis (evdev's stick Y grows downwards).
    evdev: dict[str, dict] = field(default_factory=dict)
    joy: dict[str, dict] = field(default_factory=dict)  # sensor_msgs/Joy indices -> input names

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TeleopError(f"device map: mode must be one of {MODES}, got {self.mode!r}")
        if self.intervention_mode not in INTERVENTION_MODES:
            raise TeleopError(
                f"device map: intervention_mode must be one of {INTERVENTION_MODES}, got {self.intervention_mode!r}"
            )
        unknown = sorted(set(self.episode) - set(EPISODE_ACTIONS))
        if unknown:
            raise TeleopError(f"device map: unknown episode actions {unknown}; use {list(EPISODE_ACTIONS)}")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise TeleopError(f"device map: timeout_s must be a positive number of seconds, got {self.timeout_s}")
        if self.mode == "end_effector":
            bad = [b.target for b in self.axes if b.target not in (*EE_AXES, "gripper")]
            if bad:
                raise TeleopError(f"device map: end_effector targets must be {EE_AXES} or gripper, got {bad}")

    def describe(self) -> str:
        """One line for the operator: which input does what (the teleop node logs it at start)."""
        parts = [f"{b.input} {b.target}{'+' if b.scale > 0 else '-'}" for b in self.axes]
        parts += [f"{k} gripper {w}" for k, w in ((self.gripper_open, "open"), (self.gripper_close, "close")) if k]
        parts += [f"{button} {action}" for action, button in self.episode.items()]
        if self.deadman:
            parts.append(f"hold {self.deadman} to move")
        if self.intervention:
            parts.append(f"{self.intervention} intervention ({self.intervention_mode})")
        return ", ".join(parts)

    def check_joints(self, joint_names: list[str], source: str) -> None:
        """Joint-mode targets must be the robot's joints (a typo would silently drive nothing)."""
        if self.mode != "joint":
            return
        unknown = sorted({b.target for b in self.axes} - set(joint_names) - {"gripper"})
        if unknown:
            raise TeleopError(f"{source}: device map targets {unknown} are not joints of this robot ({joint_names})")


def load_device_map(path: str | Path) -> DeviceMap:
    """Read a device map YAML; a bad file fails with its path and the problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TeleopError(f"{path}: cannot read device map ({exc})") from exc
    if not isinstance(data, dict):
        raise TeleopError(f"{path}: a device map is a YAML mapping, got {type(data).__name__}")
    try:
        deadzone = float(data.pop("deadzone", 0.0))
        axes = [
            AxisBinding(
                input=str(name),
                target=str(spec["target"]),
                scale=float(spec["scale"]),
                deadzone=float(spec.get("deadzone", deadzone)),
            )
            for name, spec in (data.pop("axes", None) or {}).items()
        ]
        return DeviceMap(axes=axes, **data)
    except TeleopError as exc:
        raise TeleopError(f"{path}: {exc}") from exc
    except (TypeError, KeyError, ValueError) as exc:
        raise TeleopError(f"{path}: bad device map entry ({exc!r}); see config/teleop/gamepad.yaml") from exc


def apply_deadzone(value: float, deadzone: float) -> float:
    """0 inside the dead-zone; outside it rescaled so the stick's full throw still reaches ±1."""
    if abs(value) <= deadzone:
        return 0.0
    return math.copysign((abs(value) - deadzone) / (1.0 - deadzone), value) if deadzone < 1.0 else 0.0
