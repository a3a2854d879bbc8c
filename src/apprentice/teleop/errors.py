"""The teleop package's one exception type."""

from __future__ import annotations


class TeleopError(RuntimeError):
    """A teleop device or device map problem; the message names the device/file and what to do."""
