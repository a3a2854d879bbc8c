"""run_node: a signal is a clean exit wherever it lands; an error while ROS is still up is not hidden."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")

_NODE = textwrap.dedent(
    """
    import sys
    import threading
    import time
    import rclpy
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray
    from apprentice.nodes.runtime import request_shutdown, run_node

    MODE = sys.argv[1]

    class Busy(Node):
        def __init__(self):
            super().__init__("runtime_probe")
            self.ticks = 0
            self.pub = self.create_publisher(Float64MultiArray, "runtime_probe/data", 10)
            self.create_subscription(Float64MultiArray, "runtime_probe/data", lambda _m: None, 10)
            self.create_timer(0.001, self.tick)
            self.stop = threading.Event()
            if MODE == "worker":  # a capture-style thread that publishes on its own, as fast as it can
                self.worker = threading.Thread(target=self.work, name="worker")
                self.worker.start()

        def work(self):
            n = 0
            while not self.stop.is_set():
                n += 1
                self.pub.publish(Float64MultiArray(data=[float(n)] * 64))

        def tick(self):
            self.ticks += 1
            self.pub.publish(Float64MultiArray(data=[float(self.ticks)] * 64))
            if self.ticks == 1:
                print("spinning", flush=True)
            if MODE == "shutdown_then_raise" and self.ticks == 20:
                rclpy.try_shutdown()
                raise RuntimeError("raised after the context was shut down")
            if MODE == "hang" and self.ticks == 20:
                print("hanging", flush=True)
                while True:
                    time.sleep(0.01)
            if MODE == "raise" and self.ticks == 20:
                raise RuntimeError("a real failure inside a callback")
            if MODE == "request" and self.ticks == 20:
                threading.Thread(target=request_shutdown).start()

        def close(self):
            print(f"context ok in close: {rclpy.ok()}", flush=True)
            self.stop.set()
            if MODE == "worker":
                self.worker.join()
            if MODE == "slow_close":
                print("closing", flush=True)
                time.sleep(1.5)
            print("closed", flush=True)

    sys.exit(run_node(Busy))
    """
)


def _start(mode: str, ros_env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _NODE, mode],
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen, line: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if got.strip() == line:
            return
        if not got and proc.poll() is not None:
            break
    raise AssertionError(f"node never printed {line!r} (exit {proc.poll()})")


def _exits_cleanly(proc: subprocess.Popen) -> str:
    """Exit code 0, and the node's close() ran; returns the output."""
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "closed" in out, out
    return out


def test_sigint_at_any_moment_of_a_busy_spin_exits_zero_and_closes(ros_env: dict[str, str]) -> None:
    # 1 kHz timer plus a subscription to its own topic: the executor is always mid-step, which is where
    # a signal used to surface as rclpy's "context is not valid" error instead of a clean exit.
    for delay in (0.0, 0.013, 0.031, 0.057, 0.11):
        proc = _start("run", ros_env)
        _wait_for_line(proc, "spinning")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out = _exits_cleanly(proc)
        assert "Traceback" not in out, out


def test_worker_threads_are_stopped_by_close_before_the_context_goes(ros_env: dict[str, str]) -> None:
    # The capture-thread race: rclpy's own SIGINT handler used to shut the context down at once, so a
    # thread publishing before close() stopped it died with "publisher's context is invalid".
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2):
        proc = _start("worker", ros_env)
        _wait_for_line(proc, "spinning")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out = _exits_cleanly(proc)
        assert "context ok in close: True" in out, out
        assert "Traceback" not in out and "RCLError" not in out, out


def test_request_shutdown_from_any_thread_stops_like_sigint(ros_env: dict[str, str]) -> None:
    out = _exits_cleanly(_start("request", ros_env))
    assert "context ok in close: True" in out, out
    assert "Traceback" not in out, out


def test_sigterm_is_the_same_clean_exit(ros_env: dict[str, str]) -> None:
    proc = _start("run", ros_env)
    _wait_for_line(proc, "spinning")
    proc.send_signal(signal.SIGTERM)
    _exits_cleanly(proc)


def test_error_after_the_context_is_shut_down_counts_as_shutdown(ros_env: dict[str, str]) -> None:
    _exits_cleanly(_start("shutdown_then_raise", ros_env))


def test_error_while_ros_is_up_propagates_and_still_closes(ros_env: dict[str, str]) -> None:
    proc = _start("raise", ros_env)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0, out
    assert "a real failure inside a callback" in out, out
    assert "closed" in out, out


def test_a_second_sigint_interrupts_a_callback_that_hangs(ros_env: dict[str, str]) -> None:
    proc = _start("hang", ros_env)
    _wait_for_line(proc, "hanging")
    proc.send_signal(signal.SIGINT)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)  # the first one asks politely; the callback never returns
    proc.send_signal(signal.SIGINT)
    _exits_cleanly(proc)


def test_sigints_during_close_do_not_cut_it_short(ros_env: dict[str, str]) -> None:
    # close() is where a driver turns torque off: an impatient Ctrl-C must not skip it.
    proc = _start("slow_close", ros_env)
    _wait_for_line(proc, "spinning")
    proc.send_signal(signal.SIGINT)
    _wait_for_line(proc, "closing")
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    out = _exits_cleanly(proc)
    assert "KeyboardInterrupt" not in out, out
