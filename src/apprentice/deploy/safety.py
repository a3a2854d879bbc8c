"""Command safety: a maximum step relative to the measured position, then joint limits.

Both act in command units (radians for revolute joints, as on the topics) on the joints named by
the contract's action feature. Order matters: the relative clamp first (the arm never jumps), then
the absolute limits (which win if the measured position itself is already outside them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from apprentice.deploy import DeployError


@dataclass
class SafetyLimits:
    """Per-joint limits; ``None`` disables a check. Scalars apply to every joint."""

    names: list[str]
    max_relative_step: float | list[float] | None = None  # largest |command - measured| per tick
    lower: list[float] | None = None
    upper: list[float] | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        for label in ("max_relative_step", "lower", "upper"):
            value = getattr(self, label)
            if value is None or np.isscalar(value):
                continue
            if len(value) != n:
                raise DeployError(
                    f"safety limit {label} has {len(value)} values but the action has {n} joints "
                    f"({', '.join(self.names)}); give one value per joint or a single number"
                )
        if self.max_relative_step is not None and np.any(np.asarray(self.max_relative_step) <= 0):
            raise DeployError(f"max_relative_step must be > 0, got {self.max_relative_step}")
        if self.lower is not None and self.upper is not None:
            low, high = np.broadcast_to(self.lower, n), np.broadcast_to(self.upper, n)
            bad = [self.names[i] for i in np.flatnonzero(low > high)]
            if bad:
                raise DeployError(f"joint limits have lower > upper for {', '.join(bad)}; check the robot definition")

    @classmethod
    def from_joint_table(
        cls,
        names: Sequence[str],
        limits: Mapping[str, tuple[float, float]],
        max_relative_step: float | None = None,
    ) -> SafetyLimits:
        """Limits for ``names`` from a {joint: (lower, upper)} table (a robot definition)."""
        missing = [n for n in names if n not in limits]
        if missing:
            raise DeployError(
                f"the robot definition has no limits for joint(s) {', '.join(missing)}; "
                f"it knows {', '.join(limits) or 'none'} — check the contract's action names"
            )
        return cls(
            names=list(names),
            max_relative_step=max_relative_step,
            lower=[float(limits[n][0]) for n in names],
            upper=[float(limits[n][1]) for n in names],
        )


@dataclass
class SafetyReport:
    relative_clamped: list[str] = field(default_factory=list)
    limit_clamped: list[str] = field(default_factory=list)

    @property
    def clamped(self) -> bool:
        return bool(self.relative_clamped or self.limit_clamped)


class SafetyFilter:
    """Applies ``SafetyLimits`` to each command; counts how often each joint was clamped."""

    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        n = len(limits.names)
        as_array = lambda v: None if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), n)  # noqa: E731
        self._step = as_array(limits.max_relative_step)
        self._lower = as_array(limits.lower)
        self._upper = as_array(limits.upper)
        self.clamp_counts = dict.fromkeys(limits.names, 0)

    def apply(self, command: np.ndarray, measured: np.ndarray | None) -> tuple[np.ndarray, SafetyReport]:
        """The safe command; ``measured`` (same joint order) None skips the relative clamp."""
        command = np.asarray(command, dtype=np.float64)
        if command.shape != (len(self.limits.names),):
            raise DeployError(f"command has shape {command.shape} but the action has joints {self.limits.names}")
        if not np.all(np.isfinite(command)):
            raise DeployError(f"non-finite command {command.tolist()} for {self.limits.names}; refusing it")
        if measured is not None and not np.all(np.isfinite(measured)):
            raise DeployError(f"non-finite measured position {np.asarray(measured).tolist()}; cannot clamp")
        report = SafetyReport()
        out = command.copy()
        if self._step is not None and measured is not None:
            low, high = measured - self._step, measured + self._step
            out = np.clip(out, low, high)
            report.relative_clamped = self._changed(command, out)
        if self._lower is not None or self._upper is not None:
            before = out
            out = np.clip(out, self._lower, self._upper)
            report.limit_clamped = self._changed(before, out)
        for name in {*report.relative_clamped, *report.limit_clamped}:
            self.clamp_counts[name] += 1
        return out, report

    def _changed(self, before: np.ndarray, after: np.ndarray) -> list[str]:
        return [self.limits.names[i] for i in np.flatnonzero(before != after)]
