"""Shared node lifecycle: init → spin → close → shutdown on SIGINT/SIGTERM, exit code 0.

The order on the way out is the same for every node: the spin ends, no callback is running any more,
the node's ``close()`` stops its worker threads and releases its hardware or files, the node is
destroyed, and only then is the rclpy context shut down. A worker thread (a camera's capture loop, a
recorder's converter) therefore never publishes into a context that is already gone.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from apprentice.nodes.params import wants_help

# How often the spin looks at the stop flag. Python runs a signal handler only between bytecodes of the
# main thread, never while it waits inside rcl; so the wait is bounded, and a stop takes at most this long.
SPIN_PERIOD_S = 0.1

# One node per process: run_node runs in the main thread (signal.signal needs it), so the stop request is
# per process, like the signals that set it.
_stop = threading.Event()


def request_shutdown() -> None:
    """Ask this process's run_node to stop, as SIGINT does; safe from a callback or a worker thread.

    Use this, not rclpy.try_shutdown(): shutting the context down first would invalidate the
    publishers that the node's worker threads still use until its close() has stopped them.
    """
    _stop.set()


def run_node(
    make_node: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1, usage: str | None = None
) -> int:
    """Create the node, spin until a stop is asked for, close and destroy it; return the exit code.

    With `usage` (the node's parameter table, nodes/params.node_help), `-h`/`--help` prints it and
    returns 0 before anything of ROS starts.

    rclpy's own signal handlers are not installed: they shut the context down the moment SIGINT
    arrives, while the node's threads and callbacks still run (a capture thread then died with
    "publisher's context is invalid"). Ours only note the request; the spin loop sees it within
    SPIN_PERIOD_S. A second SIGINT raises KeyboardInterrupt, for a callback that hangs — but not once
    the node's close() runs: a driver's torque-off on shutdown must not be cut short.
    An error out of spin() after a stop was asked for (or after someone shut the context down) is
    part of that shutdown and counts as a clean exit; an error while running is a real failure and
    propagates, after close().
    """
    if usage is not None and wants_help(sys.argv[1:] if args is None else args):
        print(usage, end="")
        return 0
    _stop.clear()
    closing = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _stop.is_set() and not closing.is_set():
            raise KeyboardInterrupt
        _stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    executor: SingleThreadedExecutor | MultiThreadedExecutor | None = None
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        while not _stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if not _stop.is_set() and rclpy.ok():
            raise
    finally:
        closing.set()
        if executor is not None:
            executor.shutdown()  # a multi-threaded executor joins its threads: no callback outlives this
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
