"""nodes/ros_probe.missing_ros: a shell without the ROS setup is told which file to source."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.nodes import ros_probe


def _fake_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, built: bool) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/env.sh").write_text("")
    (tmp_path / "src/apprentice/nodes").mkdir(parents=True)
    if built:
        (tmp_path / ".venv").mkdir()
        (tmp_path / "install").mkdir()
        (tmp_path / "install/setup.bash").write_text("")
    monkeypatch.setattr(ros_probe, "__file__", str(tmp_path / "src/apprentice/nodes/ros_probe.py"))

    def no_interfaces() -> str:
        raise ModuleNotFoundError("No module named 'apprentice.msg'")

    monkeypatch.setattr(ros_probe, "custom_interfaces", no_interfaces)
    return tmp_path


def test_built_checkout_says_source_env_sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_checkout(tmp_path, monkeypatch, built=True)
    message = ros_probe.missing_ros("apprentice record")
    assert message is not None and message.startswith("apprentice record: the apprentice ROS interfaces")
    assert f"run `source scripts/env.sh` in {root}" in message


def test_unbuilt_checkout_says_run_setup_sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_checkout(tmp_path, monkeypatch, built=False)
    message = ros_probe.missing_ros("apprentice infer")
    assert message is not None and "scripts/setup.sh has not run" in message and "./scripts/setup.sh" in message


def test_pip_install_says_source_the_ros_and_workspace_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_checkout(tmp_path, monkeypatch, built=True)
    (tmp_path / "scripts/env.sh").unlink()  # site-packages: no checkout around the package
    message = ros_probe.missing_ros("apprentice record")
    assert message is not None and "/opt/ros/<distro>/setup.bash" in message and "install/setup.bash" in message


@pytest.mark.ros
def test_nothing_missing_when_sourced() -> None:
    assert ros_probe.missing_ros("apprentice record") is None
