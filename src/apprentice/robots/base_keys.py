"""Keyboard driving of an omniwheel base from a terminal: lerobot's LeKiwi keys and speed levels.

w/s forward/backward, a/d left/right, z/x rotate left/right, r/f speed up/down (0.1, 0.2, 0.3 m/s with
30, 60, 90 deg/s). A terminal reports key presses (and auto-repeats while a key is held) but never
releases, so a movement key counts as held for `hold_s` after its last press or repeat: a typical
auto-repeat (first repeat after ~0.25-0.5 s, then ~30 Hz) keeps it held, letting go stops within `hold_s`.
The general keyboard device (teleop/) is separate; this is the LeKiwi base's own small mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from apprentice.robots.errors import RobotError

BASE_KEYS = {
    "forward": "w",
    "backward": "s",
    "left": "a",
    "right": "d",
    "rotate_left": "z",
    "rotate_right": "x",
    "speed_up": "r",
    "speed_down": "f",
}
SPEED_LEVELS = ((0.1, 30.0), (0.2, 60.0), (0.3, 90.0))  # (m/s, deg/s): lerobot's slow, medium, fast
_MOTION = {  # action -> (vx sign, vy sign, wz sign)
    "forward": (1, 0, 0),
    "backward": (-1, 0, 0),
    "left": (0, 1, 0),
    "right": (0, -1, 0),
    "rotate_left": (0, 0, 1),
    "rotate_right": (0, 0, -1),
}


@dataclass
class BaseKeyboard:
    keys: dict[str, str] = field(default_factory=lambda: dict(BASE_KEYS))
    speed_levels: tuple[tuple[float, float], ...] = SPEED_LEVELS
    hold_s: float = 0.6
    speed_index: int = 0
    _pressed_at: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = sorted(set(BASE_KEYS) - set(self.keys))
        if missing:
            raise RobotError(f"base keys: no key for {missing}; give all of {sorted(BASE_KEYS)}")
        if not self.speed_levels or not 0 <= self.speed_index < len(self.speed_levels):
            raise RobotError(f"base keys: speed_index {self.speed_index} is not in 0..{len(self.speed_levels) - 1}")
        self._action = {key: action for action, key in self.keys.items()}

    def press(self, key: str, now: float) -> None:
        """One key press or auto-repeat at time `now` (seconds, any monotonic clock)."""
        action = self._action.get(key.lower())
        if action == "speed_up":
            self.speed_index = min(self.speed_index + 1, len(self.speed_levels) - 1)
        elif action == "speed_down":
            self.speed_index = max(self.speed_index - 1, 0)
        elif action is not None:
            self._pressed_at[action] = now

    def release_all(self) -> None:
        self._pressed_at.clear()

    def twist(self, now: float) -> tuple[float, float, float]:
        """(vx m/s, vy m/s, wz rad/s) from the keys held at `now`."""
        xy, theta_deg = self.speed_levels[self.speed_index]
        vx = vy = wz = 0.0
        for action, t in self._pressed_at.items():
            if now - t <= self.hold_s:
                sx, sy, sz = _MOTION[action]
                vx, vy, wz = vx + sx * xy, vy + sy * xy, wz + sz * math.radians(theta_deg)
        return vx, vy, wz
