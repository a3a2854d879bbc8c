"""A virtual arm: a VirtualServoBus hosting a robot definition's motors, optionally moved by a "hand".

Used by `apprentice sim-bus`, by the driver/teleop nodes with `port:=virtual`, and by tests. With
`motion="sine"` and torque off (a leader arm), every joint sways like an operator waving the leader.
"""

from __future__ import annotations

import math

from apprentice.motors import VirtualServoBus
from apprentice.robots.definition import RobotDefinition
from apprentice.robots.errors import RobotError

MOTIONS = ("none", "sine")


def make_virtual_arm(
    definition: RobotDefinition,
    *,
    motion: str = "none",
    amplitude: float = 300.0,
    period_s: float = 4.0,
    tau_s: float = 0.03,
) -> VirtualServoBus:
    """An unstarted virtual bus for `definition` (call .start() or use `with`); shafts start mid-range."""
    if motion not in MOTIONS:
        raise RobotError(f"virtual arm motion must be one of {MOTIONS}, got '{motion}'")
    virtual = VirtualServoBus(definition.vendor, {j.id: j.model for j in definition.joints}, tau_s=tau_s)
    if motion == "sine":
        for index, motor in enumerate(virtual.motors):
            start, phase = motor.actual, index / len(virtual.motors)

            def hand(t: float, start: float = start, phase: float = phase) -> float:
                return start + amplitude * math.sin(2 * math.pi * (t / period_s + phase))

            motor.hand = hand
    return virtual
