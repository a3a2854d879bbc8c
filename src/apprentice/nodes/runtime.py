"""Shared node lifecycle: init → spin → clean shutdown on SIGINT/SIGTERM, exit code 0."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from apprentice.nodes.params import wants_help


def run_node(
    make_node: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1, usage: str | None = None
) -> int:
    """Create the node, spin until shutdown, destroy it; return the process exit code.

    With `usage` (the node's parameter table, nodes/params.node_help), `-h`/`--help` prints it and
    returns 0 before anything of ROS starts.

    rclpy.init installs rclpy's SIGINT/SIGTERM handler, which shuts the context down and wakes the
    executor (spin() then ends with ExternalShutdownException), and chains to the Python handler that
    was there before. Ours only notes that a stop was asked for: Python's default SIGINT handler would
    also raise KeyboardInterrupt at whatever bytecode runs next — inside rclpy's pybind calls that
    surfaces as a RuntimeError ("Unable to convert call argument") or an invalid-context error instead
    of a clean exit. A second SIGINT does raise KeyboardInterrupt, for a callback that hangs — but not
    once the node's close() runs: a driver's torque-off on shutdown must not be cut short.
    Once a stop was asked for, an error out of spin() is that race and counts as a clean exit; an
    error while no stop was asked for is a real failure and propagates.
    """
    if usage is not None and wants_help(sys.argv[1:] if args is None else args):
        print(usage, end="")
        return 0
    stop_requested, closing = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and stop_requested.is_set() and not closing.is_set():
            raise KeyboardInterrupt
        stop_requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rclpy.init(args=list(args) if args is not None else None)
    node = None
    try:
        node = make_node()
        if stop_requested.is_set():  # signalled before rclpy's handler was in place
            return 0
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else None
        if executor is None:
            rclpy.spin(node)
        else:
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if not stop_requested.is_set() and rclpy.ok():
            raise
    finally:
        closing.set()
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def message_class(msg_type: str) -> Any:
    """'sensor_msgs/msg/Image' -> the generated Python class (the nodes subscribe by contract type names)."""
    pkg, kind, name = msg_type.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
