"""`RobotEnv`: a real arm as a gymnasium-style env for online RL (lerobot's gym_manipulator, for our robots).

One config file (`RobotEnvConfig`, JSON or YAML) says how actions become joint commands and what the
policy sees:

- ``control_mode: ee_delta`` — the action is (dx, dy, dz) in [-1, 1] times `end_effector_step_sizes`
  metres, plus a gripper command in [0, 2] (gym-hil's: 0 open, 1 stay, 2 close) when `use_gripper`;
  the new end-effector target is clipped to `end_effector_bounds` and turned into joint targets by
  inverse kinematics. ``control_mode: joint`` — the action is the joint targets themselves.
  Every joint target is clipped to `joint_bounds` either way.
- images are cropped (`crop_params_dict`: key -> [top, left, height, width]) then resized
  (`resize_size`: [height, width]), lerobot's image preprocessing.
- `reset()` drives to `fixed_reset_joint_positions` and waits `reset_time_s`; an episode is truncated
  after `control_time_s`.
- an intervention source (the operator's leader arm, keyboard, gamepad, a scripted human in sim) may
  replace the policy's action: the env executes the operator's action and reports it in
  ``info["action_intervention"]`` with ``info["is_intervention"]``, so the stored transition holds what
  the robot really did (lerobot's complementary_info.is_intervention).

Plain Python over two small interfaces, `Robot` and `Kinematics`: a servo arm with its URDF
kinematics on hardware, `apprentice.rl.sim_robot` in tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from apprentice.rl.intervention import InterventionSource

CONTROL_MODES = ("ee_delta", "joint")


class RobotEnvError(ValueError):
    """A robot env config or action that cannot be used; the message names the field or value."""


class Robot(Protocol):
    joint_names: list[str]

    def read_joints(self) -> np.ndarray: ...  # radians, joint_names order

    def send_joints(self, q: np.ndarray) -> None: ...

    def read_images(self) -> dict[str, np.ndarray]: ...  # camera name -> (H, W, 3) uint8

    def wait(self, seconds: float) -> None: ...  # hardware: sleep to the next tick; sim: advance physics


class Kinematics(Protocol):
    def fk(self, q: np.ndarray) -> np.ndarray: ...  # (3,) end-effector position, metres

    def ik(self, position: np.ndarray, q_seed: np.ndarray) -> np.ndarray: ...  # joint targets


@dataclass
class RobotEnvConfig:
    fps: float = 10.0
    control_mode: str = "ee_delta"
    end_effector_step_sizes: dict[str, float] = field(default_factory=lambda: {"x": 0.025, "y": 0.025, "z": 0.025})
    end_effector_bounds: dict[str, list[float]] | None = None  # {"min": [x, y, z], "max": [x, y, z]} metres
    joint_bounds: dict[str, list[float]] | None = None  # {"min": [...], "max": [...]} radians, joint order
    use_gripper: bool = True
    gripper_joint: str = "gripper"
    gripper_step: float = 0.1  # radians per step for a gripper command of 0 (open) or 2 (close)
    crop_params_dict: dict[str, list[int]] | None = None  # observation.images.<cam> -> [top, left, h, w]
    resize_size: list[int] | None = None  # [height, width] after the crop
    fixed_reset_joint_positions: list[float] | None = None
    reset_time_s: float = 5.0
    control_time_s: float = 20.0  # episode time limit

    def __post_init__(self) -> None:
        if self.control_mode not in CONTROL_MODES:
            raise RobotEnvError(f"control_mode {self.control_mode!r}: choose one of {', '.join(CONTROL_MODES)}")
        if self.fps <= 0 or self.control_time_s <= 0 or self.reset_time_s < 0:
            raise RobotEnvError("fps and control_time_s must be > 0, reset_time_s >= 0")
        if set(self.end_effector_step_sizes) != {"x", "y", "z"}:
            raise RobotEnvError(f"end_effector_step_sizes needs x, y, z, got {sorted(self.end_effector_step_sizes)}")
        for name in ("end_effector_bounds", "joint_bounds"):
            bounds = getattr(self, name)
            if bounds is None:
                continue
            if set(bounds) != {"min", "max"} or len(bounds["min"]) != len(bounds["max"]):
                raise RobotEnvError(f"{name} must be {{min: [...], max: [...]}} of equal length, got {bounds}")
            if np.any(np.asarray(bounds["min"]) > np.asarray(bounds["max"])):
                raise RobotEnvError(f"{name}: min {bounds['min']} exceeds max {bounds['max']}")
        if self.end_effector_bounds is not None and len(self.end_effector_bounds["min"]) != 3:
            raise RobotEnvError("end_effector_bounds: min and max are [x, y, z]")
        for key, crop in (self.crop_params_dict or {}).items():
            if len(crop) != 4 or min(crop) < 0 or crop[2] == 0 or crop[3] == 0:
                raise RobotEnvError(f"crop_params_dict[{key!r}] = {crop}: expected [top, left, height > 0, width > 0]")
        if self.resize_size is not None and (len(self.resize_size) != 2 or min(self.resize_size) < 1):
            raise RobotEnvError(f"resize_size {self.resize_size}: expected [height, width]")

    @property
    def max_episode_steps(self) -> int:
        return max(1, round(self.control_time_s * self.fps))

    @classmethod
    def from_file(cls, path: str | Path) -> RobotEnvConfig:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise RobotEnvError(f"robot env config {path}: {exc.strerror}") from exc
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise RobotEnvError(f"{path}: unknown field(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)


def preprocess_image(image: np.ndarray, crop: list[int] | None, size: list[int] | None) -> np.ndarray:
    """Crop [top, left, h, w] (clipped to the image) then resize to [h, w] (area interpolation)."""
    if crop is not None:
        top, left, h, w = crop
        if top >= image.shape[0] or left >= image.shape[1]:
            raise RobotEnvError(f"crop {crop} starts outside the {image.shape[0]}x{image.shape[1]} image")
        image = image[top : top + h, left : left + w]
    if size is not None and tuple(image.shape[:2]) != tuple(size):
        import cv2

        image = cv2.resize(image, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


class RobotEnv:
    """reset/step over a `Robot`; `kinematics` is needed for ``control_mode: ee_delta``."""

    def __init__(self, robot: Robot, config: RobotEnvConfig, kinematics: Kinematics | None = None,
                 intervention: InterventionSource | None = None) -> None:
        if config.control_mode == "ee_delta" and kinematics is None:
            raise RobotEnvError("control_mode ee_delta needs the arm's kinematics (its URDF); "
                                "or use control_mode joint")
        n = len(robot.joint_names)
        if config.joint_bounds is not None and len(config.joint_bounds["min"]) != n:
            raise RobotEnvError(f"joint_bounds has {len(config.joint_bounds['min'])} values, the robot {n} joints "
                                f"{robot.joint_names}")
        if config.fixed_reset_joint_positions is not None and len(config.fixed_reset_joint_positions) != n:
            raise RobotEnvError(f"fixed_reset_joint_positions has {len(config.fixed_reset_joint_positions)} values, "
                                f"the robot {n} joints")
        if config.use_gripper and config.control_mode == "ee_delta" and config.gripper_joint not in robot.joint_names:
            raise RobotEnvError(f"gripper_joint {config.gripper_joint!r} is not one of {robot.joint_names}")
        self.robot, self.config, self.kinematics, self.intervention = robot, config, kinematics, intervention
        self.elapsed = 0
        self.action_dim = (3 + int(config.use_gripper)) if config.control_mode == "ee_delta" else n
        self._obs: dict[str, np.ndarray] = {}

    def observation(self) -> dict[str, np.ndarray]:
        obs = {"observation.state": np.asarray(self.robot.read_joints(), dtype=np.float32)}
        for camera, image in self.robot.read_images().items():
            key = f"observation.images.{camera}"
            crop = (self.config.crop_params_dict or {}).get(key)
            obs[key] = preprocess_image(image, crop, self.config.resize_size)
        return obs

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Go to the reset pose and wait reset_time_s (the operator may rearrange the scene meanwhile).

        The pose is approached along a straight joint-space line over the first half of reset_time_s,
        one command per control tick (an arm's per-command step clamp would stop a single jump short),
        then held for the second half.
        """
        ticks = max(1, round(self.config.reset_time_s * self.config.fps))
        if self.config.fixed_reset_joint_positions is not None:
            start = np.asarray(self.robot.read_joints(), dtype=float)
            goal = self._clip_joints(np.asarray(self.config.fixed_reset_joint_positions, float))
            for i in range(1, ticks + 1):
                self.robot.send_joints(start + (goal - start) * min(1.0, 2.0 * i / ticks))
                self.robot.wait(1.0 / self.config.fps)
        else:
            self.robot.wait(self.config.reset_time_s)
        if self.intervention is not None:
            self.intervention.reset()
        self.elapsed = 0
        self._obs = self.observation()
        return self._obs, {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        info: dict[str, Any] = {"is_intervention": False}
        if self.intervention is not None:
            human = self.intervention.intervene(self._obs, action.astype(np.float32))
            if human is not None:
                action = np.asarray(human, dtype=np.float64).reshape(-1)
                info.update(is_intervention=True, action_intervention=action.astype(np.float32))
        if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
            raise RobotEnvError(f"action must be {self.action_dim} finite values ({self.config.control_mode}), "
                                f"got {action.tolist()}")
        self.robot.send_joints(self.joint_targets(action))
        self.robot.wait(1.0 / self.config.fps)
        self.elapsed += 1
        self._obs = self.observation()
        truncated = self.elapsed >= self.config.max_episode_steps
        return self._obs, 0.0, False, truncated, {**info, "is_success": False}

    def joint_targets(self, action: np.ndarray) -> np.ndarray:
        """The clipped joint command for one action (see the module docstring for both modes)."""
        if self.config.control_mode == "joint":
            return self._clip_joints(action)
        assert self.kinematics is not None
        q = np.asarray(self.robot.read_joints(), dtype=float)
        steps = np.array([self.config.end_effector_step_sizes[a] for a in "xyz"])
        target = self.kinematics.fk(q) + np.clip(action[:3], -1.0, 1.0) * steps
        if self.config.end_effector_bounds is not None:
            target = np.clip(target, self.config.end_effector_bounds["min"], self.config.end_effector_bounds["max"])
        goal = np.asarray(self.kinematics.ik(target, q), dtype=float)
        if self.config.use_gripper:
            g = self.robot.joint_names.index(self.config.gripper_joint)
            # 0 open, 1 stay, 2 close (gym-hil): open is +, as the SO-101's gripper opens with positive angles
            goal[g] = q[g] + (1.0 - float(np.clip(action[3], 0.0, 2.0))) * self.config.gripper_step
        return self._clip_joints(goal)

    def _clip_joints(self, q: np.ndarray) -> np.ndarray:
        bounds = self.config.joint_bounds
        return q if bounds is None else np.clip(q, bounds["min"], bounds["max"])

    def close(self) -> None:
        close = getattr(self.robot, "close", None)
        if close is not None:
            close()
