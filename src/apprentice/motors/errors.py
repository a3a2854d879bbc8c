"""The motors package's one exception type."""

from __future__ import annotations


class BusError(RuntimeError):
    """A servo bus problem: port, motor, register or calibration. The message names which and what to do."""
