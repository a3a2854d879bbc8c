"""Human takeover (DAgger): who drives the arm — the policy, or a person with the leader arm.

A leader arm is passive: it stays where the operator left it. So when it *moves* the operator has
grabbed it, and that is the takeover signal a person actually uses mid-episode (hands on the arm, no
key to reach for): a leader pose more than ``threshold_rad`` (any joint) away from its pose when the
policy last took control starts a takeover. ``request(True/False)`` (the `~/takeover` service: a pedal,
a GUI, a script) takes over or hands back explicitly; handing back is always explicit, because a
still leader does not mean the operator is done.

While taken over the node publishes the leader's targets instead of the policy's actions, through the
same safety filter, and the intervention flag is True; the two sources never both command a tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apprentice.deploy import DeployError


@dataclass
class TakeoverConfig:
    """When the leader arm takes the robot over from the policy."""

    threshold_rad: float = 0.0  # leader motion (max over joints) that starts a takeover; 0 = service only
    max_age_s: float = 0.1  # a leader pose older than this is not relayed: the arm holds instead

    def __post_init__(self) -> None:
        if self.threshold_rad < 0:
            raise DeployError(f"takeover threshold must be >= 0 rad (0 = off), got {self.threshold_rad}")
        if self.max_age_s <= 0:
            raise DeployError(f"takeover max_age_s must be > 0, got {self.max_age_s}")


class Takeover:
    """The takeover state from leader poses (radians, action joint order) and explicit requests."""

    def __init__(self, config: TakeoverConfig | None = None) -> None:
        self.config = config or TakeoverConfig()
        self.active = False
        self.takeovers = 0  # segments started (diagnostics)
        self._pose: np.ndarray | None = None
        self._stamp_ns = 0
        self._anchor: np.ndarray | None = None  # leader pose when the policy (re)gained control

    def leader(self, stamp_ns: int, positions: np.ndarray, detect: bool = True) -> str | None:
        """A leader pose arrived; returns why a takeover started, if this pose started one (only when
        ``detect``: not while the policy would not drive anyway, e.g. in the recorder's reset period)."""
        pose = np.asarray(positions, np.float64)
        if not np.all(np.isfinite(pose)):
            return None  # a bad read is never relayed; the last good pose ages out instead
        self._pose, self._stamp_ns = pose, int(stamp_ns)
        if self._anchor is None or self._anchor.shape != pose.shape:
            self._anchor = pose.copy()
            return None
        if self.active or self.config.threshold_rad <= 0:
            return None
        if not detect:
            self._anchor = pose.copy()  # motion counts from where the leader is when driving starts
            return None
        moved = float(np.max(np.abs(pose - self._anchor)))
        if moved <= self.config.threshold_rad:
            return None
        self._start()
        return f"leader arm moved {moved:.3f} rad (threshold {self.config.threshold_rad:g})"

    def request(self, on: bool) -> tuple[bool, str]:
        """Take over (True) or hand back to the policy (False), e.g. from a service call."""
        if on:
            if self.active:
                return True, "already taken over"
            if self._pose is None:
                return False, "no leader arm pose received yet: nothing to drive the robot with"
            self._start()
            return True, "taken over: the leader arm drives"
        was = self.active
        self.end()
        return True, "handed back to the policy" if was else "the policy was driving already"

    def end(self) -> None:
        """Hand back (or an episode ended): the leader's present pose is where motion is measured from."""
        self.active = False
        self._anchor = None if self._pose is None else self._pose.copy()

    def target(self, now_ns: int) -> np.ndarray | None:
        """The leader pose to relay now, or None when it is older than max_age_s (hold)."""
        if self._pose is None or (now_ns - self._stamp_ns) * 1e-9 > self.config.max_age_s:
            return None
        return self._pose

    def _start(self) -> None:
        self.active = True
        self.takeovers += 1
