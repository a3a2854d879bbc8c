"""The robots package's one exception type (a BusError, so bus-level handlers catch it too)."""

from __future__ import annotations

from apprentice.motors import BusError


class RobotError(BusError):
    """A robot definition, calibration or safety problem; the message names the file/joint and the fix."""
