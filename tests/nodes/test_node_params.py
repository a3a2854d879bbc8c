"""nodes/params.py + run_node's --help: every node executable prints its parameter table and starts no ROS."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apprentice.nodes.params import Param, node_help, wants_help

ROOT = Path(__file__).resolve().parents[2]


def node_executables() -> list[str]:
    block = re.search(r"set\(APPRENTICE_NODES(.*?)\)", (ROOT / "CMakeLists.txt").read_text(), re.S)
    assert block, "CMakeLists.txt has no APPRENTICE_NODES list"
    return block.group(1).split()


def test_wants_help_ignores_ros_arguments() -> None:
    assert wants_help(["--help"]) and wants_help(["-h", "--ros-args", "-p", "a:=1"])
    assert not wants_help(["--ros-args", "-p", "a:=1"])
    assert not wants_help(["--ros-args", "--help"])  # rcl's own --ros-args --help is not ours
    assert wants_help(["--ros-args", "-p", "a:=1", "--", "--help"])


def test_help_text_lists_name_type_default_description() -> None:
    text = node_help("x_node", "X node: does x.\n\nMore.", [Param("rate_hz", 100.0, "how often"),
                                                          Param("names", [], "which", array_of=str),
                                                          Param("on", True, "")])
    assert "ros2 run apprentice x_node" in text and "X node: does x." in text and "More." not in text
    assert re.search(r"rate_hz\s+float\s+default 100.0\s+— how often", text)
    assert re.search(r"names\s+str\[\]\s+default \[\]", text) and re.search(r"on\s+bool\s+default true", text)


@pytest.mark.ros
@pytest.mark.parametrize("executable", node_executables())
def test_every_node_executable_answers_help(executable: str, ros_env, tmp_path: Path) -> None:
    """The launcher CMake installs into lib/apprentice, run as `ros2 run` runs it: --help and -h exit 0,
    print every declared parameter, and never initialise ROS (rclpy.init would write a log under ROS_LOG_DIR)."""
    launcher = tmp_path / executable
    launcher.write_text((ROOT / "scripts/node_launcher.py.in").read_text().replace("@NODE_MODULE@", executable))
    ros_env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    params = importlib.import_module(f"apprentice.nodes.{executable}").PARAMETERS
    assert params, executable
    for flag in ("--help", "-h") if executable == "sim_node" else ("--help",):  # -h: the same code path
        done = subprocess.run([sys.executable, str(launcher), flag], env=ros_env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"ros2 run apprentice {executable}" in done.stdout
        for p in params:
            assert re.search(rf"^  {re.escape(p.name)}\s+{re.escape(p.type_name)}\s+default ", done.stdout, re.M), p
    assert not (tmp_path / "ros_log").exists(), "rclpy.init ran: --help started ROS"
