"""Start the package's nodes as child processes, the way `ros2 launch` would, and always stop them.

For pip installs without launch_ros: `apprentice demo` runs the same node executables with the same
parameter files as launch/sim_demo.launch.py. Every child gets its own log file, joins one private
ROS graph (loopback discovery, the caller's domain id) and is stopped on exit, error or Ctrl-C:
SIGINT first (a clean rclpy shutdown, so recorders flush), then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from apprentice.deploy import DeployError


def node_command(
    module: str,
    params_file: Path | None = None,
    params: dict[str, object] | None = None,
    name: str | None = None,
) -> list[str]:
    """The command `ros2 run apprentice <module> --ros-args ...` runs, without needing ros2cli."""
    cmd = [sys.executable, "-c", f"import sys; from apprentice.nodes.{module} import main; sys.exit(main())"]
    cmd.append("--ros-args")
    if name:
        cmd += ["-r", f"__node:={name}"]
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    for key, value in (params or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["-p", f"{key}:={text}"]
    return cmd


def private_ros_env(domain_id: int | None = None, run_id: str = "") -> dict[str, str]:
    """This environment with discovery on loopback and a ROS domain of its own (1..100 unless given).

    ``run_id`` is exported as APPRENTICE_RUN_ID so a run's processes can be found (and tests can
    check that none outlived it).
    """
    env = dict(os.environ)
    if run_id:
        env["APPRENTICE_RUN_ID"] = run_id
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else random.SystemRandom().randint(1, 100))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ProcessGroup:
    """Named child processes with log files; a context manager that stops every one on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.procs: dict[str, tuple[subprocess.Popen, IO[bytes]]] = {}

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, cmd: Sequence[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        if name in self.procs and self.procs[name][0].poll() is None:
            raise DeployError(f"process {name!r} is already running")
        log = self.log_path(name).open("ab")
        env = {**self.env, **(extra_env or {})}
        # Own process group: a Ctrl-C in the terminal reaches only the demo, which then stops the
        # children in order (recorder flushing first) instead of all at once.
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs[name] = (proc, log)
        return proc

    def running(self, name: str) -> bool:
        return name in self.procs and self.procs[name][0].poll() is None

    def check_alive(self, *names: str) -> None:
        """Raise DeployError naming the log if one of ``names`` exited."""
        for name in names:
            proc = self.procs[name][0]
            if proc.poll() is not None:
                raise DeployError(
                    f"{name} exited with code {proc.returncode}; see {self.log_path(name)}:\n" + self.tail(name)
                )

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def wait_for_output(self, name: str, pattern: str, timeout_s: float) -> None:
        """Block until ``name``'s log matches the regex ``pattern`` (e.g. a node's start-up line)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive(name)
            if re.search(pattern, self.log_path(name).read_text(errors="replace")):
                return
            time.sleep(0.1)
        raise DeployError(
            f"{name} did not start within {timeout_s:.0f} s; see {self.log_path(name)}\n" + self.tail(name)
        )

    def wait(
        self, name: str, timeout_s: float, poll: Callable[[], None] | None = None, watch: Sequence[str] = ()
    ) -> int:
        """Wait for ``name`` to exit (calling ``poll`` meanwhile, checking ``watch`` stay alive)."""
        proc = self.procs[name][0]
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise DeployError(f"{name} did not finish within {timeout_s:.0f} s; see {self.log_path(name)}")
            if poll is not None:
                poll()
            self.check_alive(*watch)
            time.sleep(0.2)
        return proc.returncode

    def stop(self, name: str, timeout_s: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL; returns the exit code."""
        entry = self.procs.pop(name, None)
        if entry is None:
            return None
        proc, log = entry
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        log.close()
        return proc.poll()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):  # last started first: consumers before producers
            self.stop(name)
