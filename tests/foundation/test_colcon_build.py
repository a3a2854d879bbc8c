"""The package colcon-builds from a clean workspace: interfaces generate, node launchers install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_FILES = ["package.xml", "CMakeLists.txt", "colcon.meta", "msg", "srv", "src", "launch", "config", "scripts"]


def node_names() -> list[str]:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"set\(APPRENTICE_NODES(.*?)\)", cmake, re.S)
    assert block, "CMakeLists.txt must list APPRENTICE_NODES"
    return block.group(1).split()


def build_copy(ws: Path, symlink_install: bool) -> Path:
    pkg = ws / "src" / "apprentice"
    pkg.mkdir(parents=True)
    for name in PACKAGE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, pkg / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, pkg / name)
    result = subprocess.run(
        [str(ROOT / "scripts" / "build.sh"), str(pkg), str(ws)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "APPRENTICE_SYMLINK_INSTALL": "1" if symlink_install else "0"},
    )
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return ws


@pytest.fixture(scope="module")
def clean_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_copy(tmp_path_factory.mktemp("ws"), symlink_install=False)


def test_node_executables_installed(clean_workspace: Path) -> None:
    lib = clean_workspace / "install" / "apprentice" / "lib" / "apprentice"
    for node in node_names():
        exe = lib / node
        assert exe.is_file(), f"missing {exe}"
        assert os.access(exe, os.X_OK), f"{exe} is not executable"
        assert f"from apprentice.nodes.{node} import main" in exe.read_text()


def test_node_executables_run_from_a_symlink_install(tmp_path: Path) -> None:
    """`colcon build --symlink-install`, the usual developer build: the launchers link into build/."""
    ws = build_copy(tmp_path, symlink_install=True)
    lib = ws / "install" / "apprentice" / "lib" / "apprentice"
    for node in node_names():
        exe = lib / node
        assert exe.is_symlink() and os.access(exe, os.X_OK), f"{exe} is not an executable link"
    result = subprocess.run([str(lib / "driver_node"), "--ros-args", "-p", "port:=/nonexistent/tty"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "/nonexistent/tty" in result.stderr, result.stderr[-2000:]


def test_launch_and_config_installed(clean_workspace: Path) -> None:
    share = clean_workspace / "install" / "apprentice" / "share" / "apprentice"
    assert (share / "package.xml").is_file()
    for sub in ("launch", "config"):
        shipped = sorted(p.relative_to(ROOT / sub) for p in (ROOT / sub).rglob("*") if p.is_file())
        installed = sorted(p.relative_to(share / sub) for p in (share / sub).rglob("*") if p.is_file())
        assert installed == shipped


def test_generated_interfaces_import_from_clean_install(clean_workspace: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH", "LD_LIBRARY_PATH")}
    env["VIRTUAL_ENV"] = os.environ.get("VIRTUAL_ENV", str(ROOT / ".venv"))
    probe = (
        "import apprentice.msg as m, apprentice.srv as s;"
        "st = m.EpisodeStatus(state=m.EpisodeStatus.RECORDING, episode_index=3, task='pick');"
        "req = s.StartEpisode.Request(task='pick');"
        "print(m.__file__); print(st.state, st.episode_index, req.task, s.StartEpisode.Response().success)"
    )
    script = f"set +u; source '{clean_workspace}/install/setup.bash'; python3 -c \"{probe}\""
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    msg_file, values = result.stdout.strip().splitlines()
    assert msg_file.startswith(str(clean_workspace)), msg_file
    assert values == "2 3 pick False"
