"""The teleop package's one exception type."""

from __future__ import annotations


class TeleopError(Exception):
    """A kinematics, end-effector or input-device problem; the message names the file/robot and the fix."""
