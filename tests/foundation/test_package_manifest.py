"""The manifest, build files and CLI table agree with each other and with the source tree."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from catkin_pkg.package import parse_package

from apprentice.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]


def test_package_xml_is_format3_ament_cmake_with_every_dependency() -> None:
    pkg = parse_package(str(ROOT / "package.xml"))  # validates, including the maintainer e-mail
    assert pkg.package_format == 3
    assert pkg.get_build_type() == "ament_cmake"
    runtime = {d.name for d in pkg.exec_depends}
    for dep in ("rclpy", "std_msgs", "sensor_msgs", "trajectory_msgs", "std_srvs", "rosidl_default_runtime",
                "python3-numpy"):
        assert dep in runtime, dep
    assert "rosidl_default_generators" in {d.name for d in pkg.buildtool_depends}
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]


def test_pyproject_offers_the_documented_extras_and_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"ros", "train", "sim", "dev"} <= set(project["optional-dependencies"])
    assert project["scripts"]["apprentice"] == "apprentice.cli:main"


def test_every_cmake_node_has_a_module_with_main() -> None:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    nodes = re.search(r"set\(APPRENTICE_NODES(.*?)\)", cmake, re.S).group(1).split()
    for node in nodes:
        source = ROOT / "src" / "apprentice" / "nodes" / f"{node}.py"
        assert source.is_file(), f"CMakeLists.txt installs {node} but {source} does not exist"
        assert re.search(r"^def main\(", source.read_text(), re.M), f"{source} has no main()"


def test_every_subcommand_module_exposes_main() -> None:
    for name, (module_name, _) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(getattr(module, "main", None)), f"`apprentice {name}`: {module_name}.main missing"


def test_cli_version_and_doctor_json() -> None:
    version = subprocess.run([sys.executable, "-m", "apprentice.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == "apprentice 0.1.0"
    doctor = subprocess.run([sys.executable, "-m", "apprentice.cli", "doctor", "--json"], capture_output=True,
                            text=True, timeout=120)
    import json

    report = json.loads(doctor.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert {"ros2/rclpy", "rmw", "interfaces", "torch", "video"} <= set(checks)
    assert checks["rmw"]["ok"] and checks["rmw"]["detail"] == "rmw_fastrtps_cpp"
    assert doctor.returncode == (0 if all(c["ok"] for c in checks.values() if c["required"]) else 1)


def test_cli_unknown_command_fails_with_usage() -> None:
    result = subprocess.run([sys.executable, "-m", "apprentice.cli", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "dataset" in result.stderr


def test_no_rclpy_outside_nodes() -> None:
    offenders = []
    for path in (ROOT / "src" / "apprentice").rglob("*.py"):
        if "nodes" in path.relative_to(ROOT / "src" / "apprentice").parts:
            continue
        text = path.read_text()
        ros_import = r"^\s*(import rclpy|from rclpy|from (sensor|std|trajectory|geometry|diagnostic)_msgs)"
        if re.search(ros_import, text, re.M):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"ROS imports outside src/apprentice/nodes: {offenders}"


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
