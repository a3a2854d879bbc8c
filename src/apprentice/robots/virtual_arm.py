"""A virtual arm: a VirtualServoBus hosting a robot definition's motors, optionally moved by a "hand".

Used by `apprentice sim-bus`, by the driver/teleop nodes with `port:=virtual`, and by tests. With
`motion="sine"` and torque off (a leader arm), every joint sways like an operator waving the leader.
"""

from __future__ import annotations

import math

from apprentice.motors import VirtualServoBus
from apprentice.robots.bimanual import BimanualDefinition
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
    motors = {m.id: m.model for m in definition.motors().values()}  # joints, shadow motors and wheels
    virtual = VirtualServoBus(definition.vendor, motors, tau_s=tau_s)
    wheel_ids = {w.id for w in definition.wheels}
    if motion == "sine":
        shadow_ids = {m.id for m in definition.shadows}
        for index, motor in enumerate(m for m in virtual.motors if m.id not in wheel_ids | shadow_ids):
            start, phase = motor.actual, index / len(virtual.motors)

            def hand(t: float, start: float = start, phase: float = phase) -> float:
                return start + amplitude * math.sin(2 * math.pi * (t / period_s + phase))

            motor.hand = hand
        # A shadow shares its primary's joint: moved by hand, its shaft turns the other way, in step.
        for shadow in definition.shadows:
            primary, mirrored = virtual.motor(definition.motors()[shadow.mirrors].id), virtual.motor(shadow.id)
            total = primary.actual + mirrored.actual

            def mirror(t: float, hand=primary.hand, total: float = total) -> float:
                return total - hand(t)

            mirrored.hand = mirror
    return virtual


class VirtualRobot:
    """The virtual buses of one robot (two for a bimanual one): `start()` gives the port parameter."""

    def __init__(self, buses: list[VirtualServoBus]) -> None:
        self.buses = buses

    def start(self) -> str:
        return ",".join(bus.start() for bus in self.buses)

    def stop(self) -> None:
        for bus in self.buses:
            bus.stop()


def make_virtual_robot(definition: RobotDefinition | BimanualDefinition, *, motion: str = "none") -> VirtualRobot:
    """Unstarted virtual buses for any robot definition, in port order (left, right for two arms)."""
    arms = definition.arms.values() if isinstance(definition, BimanualDefinition) else [definition]
    return VirtualRobot([make_virtual_arm(d, motion=motion) for d in arms])
