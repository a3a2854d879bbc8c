"""What ROS 2 this process can use: for `apprentice doctor`, which itself stays free of ROS imports."""

from __future__ import annotations

import importlib
import os
from pathlib import Path


def rclpy_origin() -> str:
    import rclpy

    distro = os.environ.get("ROS_DISTRO") or "kilted (PyPI wheels)"
    origin = "apt install" if "/opt/ros/" in rclpy.__file__ else "PyPI wheels"
    return f"rclpy from {origin}, distro {distro}"


def rmw_implementation() -> str:
    from rclpy.utilities import get_rmw_implementation_identifier

    return get_rmw_implementation_identifier()


def message_packages() -> str:
    modules = ["sensor_msgs.msg", "std_msgs.msg", "std_srvs.srv", "trajectory_msgs.msg", "diagnostic_msgs.msg",
               "geometry_msgs.msg"]
    for name in modules:
        importlib.import_module(name)
    return ", ".join(m.split(".")[0] for m in modules)


def custom_interfaces() -> str:
    from apprentice.msg import EpisodeStatus  # noqa: F401
    from apprentice.srv import StartEpisode  # noqa: F401

    return "apprentice/msg/EpisodeStatus, apprentice/srv/StartEpisode"


def missing_ros(command: str) -> str | None:
    """None when rclpy and the colcon-built apprentice interfaces import; else one line saying what to source.

    `.venv/bin/apprentice record` without `source scripts/env.sh` has rclpy (the venv's wheels) but not
    apprentice.msg (it lives in install/, put on the path by install/setup.bash): say which file to source,
    or that scripts/setup.sh has not built it yet, instead of a ModuleNotFoundError traceback.
    """
    try:
        import rclpy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"{command}: ROS 2 (rclpy) cannot be imported ({exc}); {_what_to_source()}"
    try:
        custom_interfaces()
    except (ImportError, OSError) as exc:
        return f"{command}: the apprentice ROS interfaces are not on the path ({exc}); {_what_to_source()}"
    return None


def _what_to_source() -> str:
    checkout = Path(__file__).resolve().parents[3]  # <checkout>/src/apprentice/nodes/ros_probe.py
    if not (checkout / "scripts" / "env.sh").is_file():  # a pip install, not this repository
        return ("source your ROS 2 setup (/opt/ros/<distro>/setup.bash) and the colcon workspace that built "
                "apprentice (<workspace>/install/setup.bash)")
    if not (checkout / "install" / "setup.bash").is_file() or not (checkout / ".venv").is_dir():
        return (f"scripts/setup.sh has not run in {checkout} (no colcon build in install/): run ./scripts/setup.sh, "
                "then `source scripts/env.sh`")
    return f"run `source scripts/env.sh` in {checkout} first (it sources .venv and install/setup.bash)"
