"""Shared test setup: every ROS 2 participant a test starts stays on loopback, in its own domain."""

from __future__ import annotations

import os
import random
import signal

import pytest

# Before anything imports rclpy: discovery never leaves this machine, and each pytest run gets its own
# DDS domain so concurrent runs (CI, developers, benchmarks) cannot hear each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("MUJOCO_GL", "egl")

# A run started in the background by a non-interactive shell (`cmd &`, nohup, CI runners) inherits SIGINT ignored,
# and an ignored signal stays ignored across exec: every program a test starts would then ignore the Ctrl-C the
# test sends it. A handled signal is reset to the default on exec, so the children get a working Ctrl-C again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _rclpy_available() -> bool:
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """ROS graph tests need rclpy; without it they fail loudly unless the user opts out explicitly."""
    if _rclpy_available() or os.environ.get("APPRENTICE_SKIP_ROS_TESTS") != "1":
        return
    skip = pytest.mark.skip(reason="APPRENTICE_SKIP_ROS_TESTS=1 and rclpy is not importable")
    for item in items:
        if "ros" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def ros_env() -> dict[str, str]:
    """Environment for subprocesses that join this run's ROS graph."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
