"""Shared node lifecycle: init → spin → clean shutdown on SIGINT/SIGTERM, exit code 0."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1) -> int:
    """Create the node, spin until shutdown, destroy it; return the process exit code.

    rclpy's default SIGINT handler shuts the context down, which ends spin() with
    ExternalShutdownException; SIGTERM (what `ros2 launch` sends second) is mapped to the same path.
    """
    rclpy.init(args=list(args) if args is not None else None)
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    node = None
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else None
        if executor is None:
            rclpy.spin(node)
        else:
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
