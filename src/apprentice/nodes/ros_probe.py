"""What ROS 2 this process can use: for `apprentice doctor`, which itself stays free of ROS imports."""

from __future__ import annotations

import importlib
import os


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
