"""DeviceSource: any input device as a TeleopSource — dead-man, timeout, clamping, joint or end-effector.

Each read() turns the device's snapshot into the follower's next joint targets, or None: *hold* (the
node publishes nothing, the driver keeps its last goal). It holds when the device is lost, silent for
longer than the map's `timeout_s`, or its dead-man button is released — a lost device stops the arm.
Targets never run further than `max_relative_target` (rad) from the follower's measured joints, so a
stuck input cannot wind a target up far from where the arm is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from apprentice.teleop.device import DeviceInput, InputDevice
from apprentice.teleop.errors import TeleopError
from apprentice.teleop.mapping import EE_AXES, DeviceMap, apply_deadzone

MAX_DT_S = 0.1  # a late tick moves as if it were on time: no jump after a stall


class DeviceSource:
    """A TeleopSource over an InputDevice and its DeviceMap.

    `controller` (end-effector mode) has `step(delta, measured_q) -> joint targets`; `make_delta` builds the
    delta from keyword axes (x..yaw in m / rad for this tick, gripper -1/0/+1) — apprentice.teleop.end_effector's
    EndEffectorController and EndEffectorDelta.
    """

    def __init__(
        self,
        device: InputDevice,
        device_map: DeviceMap,
        joint_names: list[str],
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
        gripper_joint: str | None = None,
        max_relative_target: float = 0.0,
        controller: Any = None,
        make_delta: Callable[..., Any] | None = None,
    ) -> None:
        device_map.check_joints(joint_names, device.name)
        if device_map.mode == "end_effector" and (controller is None or make_delta is None):
            raise TeleopError(f"{device.name}: an end_effector device map needs the end-effector controller")
        self.device = device
        self.map = device_map
        self.joint_names = list(joint_names)
        n = len(joint_names)
        self.lower = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=float)
        self.upper = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=float)
        self.gripper_index = joint_names.index(gripper_joint) if gripper_joint in joint_names else None
        self.max_relative_target = float(max_relative_target)
        self.controller = controller
        self.make_delta = make_delta
        self.measured: np.ndarray | None = None
        self.intervention = False
        self.engaged = False
        self.hold_reason = "waiting for the follower's joint_states"
        self._episode_requests: list[str] = []
        self._target: np.ndarray | None = None
        self._previous_positions: dict[str, float] = {}
        self._last_t: float | None = None

    def observe(self, measured: np.ndarray) -> None:
        """The follower's measured joints (radians, joint_names order), from its joint_states."""
        self.measured = np.asarray(measured, dtype=float)

    def pop_episode_requests(self) -> list[str]:
        """Episode actions (start/stop/rerecord/discard) asked for since the last call."""
        requests, self._episode_requests = self._episode_requests, []
        return requests

    def read(self, now: float | None = None) -> np.ndarray | None:
        now = time.monotonic() if now is None else now
        inp = self.device.state.snapshot(now)
        self._handle_presses(inp)
        if self.map.intervention and self.map.intervention_mode == "hold":
            self.intervention = self.map.intervention in inp.buttons
        reason = self._hold_reason(inp, now)
        if reason:
            if self.engaged:  # motion stops here; re-engaging starts from the measured pose
                self._target, self._previous_positions = None, {}
                if hasattr(self.controller, "reset"):
                    self.controller.reset()
            self.engaged, self.hold_reason, self._last_t = False, reason, None
            return None
        dt = 0.0 if self._last_t is None else min(MAX_DT_S, max(0.0, now - self._last_t))
        self._last_t = now
        if not self.engaged:  # position inputs count from where they are when motion is enabled
            self._previous_positions = dict(inp.positions)
        self.engaged, self.hold_reason = True, ""
        increments = self._increments(inp, dt)
        base = self._target if self._target is not None else self.measured
        if self.map.mode == "joint":
            target = base.copy()
            for name, value in increments.items():
                if name == "gripper" and self.gripper_index is not None:
                    target[self.gripper_index] += value
                elif name in self.joint_names:
                    target[self.joint_names.index(name)] += value
        else:
            axes = {axis: increments.get(axis, 0.0) for axis in EE_AXES}
            gripper = float(np.sign(increments.get("gripper", 0.0)))
            target = np.asarray(self.controller.step(self.make_delta(**axes, gripper=gripper), self.measured))
        target = np.clip(target, self.lower, self.upper)
        if self.max_relative_target > 0:
            mrt = self.max_relative_target
            target = np.clip(target, self.measured - mrt, self.measured + mrt)
        self._target = target
        return target

    def _hold_reason(self, inp: DeviceInput, now: float) -> str:
        if self.measured is None:
            return "waiting for the follower's joint_states"
        if not inp.connected:
            return f"{self.device.name} lost"
        if now - inp.stamp > self.map.timeout_s:
            return f"{self.device.name} silent for more than {self.map.timeout_s} s"
        if self.map.deadman and self.map.deadman not in inp.buttons:
            return f"dead-man '{self.map.deadman}' released"
        return ""

    def _handle_presses(self, inp: DeviceInput) -> None:
        by_button = {button: action for action, button in self.map.episode.items()}
        for name in inp.presses:
            if name in by_button:
                self._episode_requests.append(by_button[name])
            if name == self.map.intervention and self.map.intervention_mode == "toggle":
                self.intervention = not self.intervention

    def _increments(self, inp: DeviceInput, dt: float) -> dict[str, float]:
        """Target -> how far it moves this tick (rad or m; the gripper in joint mode in rad)."""
        out: dict[str, float] = {}
        for b in self.map.axes:
            if b.input in inp.positions:
                previous = self._previous_positions.get(b.input, inp.positions[b.input])
                step = b.scale * _wrap(inp.positions[b.input] - previous)
            else:
                value = inp.axes.get(b.input, 1.0 if b.input in inp.buttons else 0.0)
                step = b.scale * apply_deadzone(value, b.deadzone) * dt
            out[b.target] = out.get(b.target, 0.0) + step
        self._previous_positions = dict(inp.positions)
        direction = (self.map.gripper_open in inp.buttons) - (self.map.gripper_close in inp.buttons)
        if direction:
            speed = self.map.gripper_speed * dt if self.map.mode == "joint" else 1.0
            out["gripper"] = out.get("gripper", 0.0) + direction * speed
        return out

    def close(self) -> None:
        self.device.close()


def _wrap(angle: float) -> float:
    """An angle difference in (-pi, pi]: the phone's compass heading jumps from 359° to 0°."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)
