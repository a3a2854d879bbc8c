"""hf-libero suites: task lists from its bddl files, lerobot's keys, the clear errors (no Hub assets here)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("libero")

from apprentice.sim import SimError, make_env
from apprentice.sim.benchmarks import libero
from apprentice.sim.cli import resolve_eval_tasks, resolve_task


@pytest.fixture(autouse=True)
def _own_config(tmp_path, monkeypatch):
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "libero-config"))


@pytest.mark.parametrize("suite", libero.SUITES)
def test_suite_task_lists_come_from_the_bddl_files(suite: str) -> None:
    tasks = libero.suite_tasks(suite)
    assert len(tasks) == 10 and len({t.name for t in tasks}) == 10
    folder = libero._package_root() / "bddl_files" / tasks[0].problem_folder
    assert all((folder / t.bddl_file).is_file() for t in tasks)
    assert all(t.language and t.language == t.language.strip() for t in tasks)
    # a suite evaluates per task, as lerobot-eval: group = the suite, task_id = its place in the suite
    evals = resolve_eval_tasks("libero", suite)
    assert [(e.group, e.task_id, e.name, e.env_kwargs) for e in evals] == [
        (suite, i, f"{suite}_task", {"task_id": i}) for i in range(10)
    ]
    with pytest.raises(SimError, match="is a suite of 10 tasks"):
        resolve_task("libero", suite)  # record/expert take one task
    assert libero.suite_members(suite) == [(f"{suite}_task", {"task_id": i}) for i in range(10)]


def test_features_and_state_layout() -> None:
    feats = libero.libero_features(256, 256)
    assert set(feats) == {"observation.state", "observation.images.image", "observation.images.image2", "action"}
    assert feats["observation.state"]["shape"] == [8] and feats["action"]["shape"] == [7]
    assert feats["observation.images.image2"]["shape"] == [256, 256, 3]
    angle = np.pi / 3  # 60 degrees about z
    quat = np.array([0, 0, np.sin(angle / 2), np.cos(angle / 2)])
    np.testing.assert_allclose(libero.quat_to_axis_angle(quat), [0, 0, angle])
    np.testing.assert_allclose(libero.quat_to_axis_angle(np.array([0, 0, 0, 1.0])), 0)


def test_missing_assets_is_one_line_naming_where_and_how() -> None:
    if any((p / "articulated_objects").is_dir() for p in (libero._package_root() / "assets",)):
        pytest.skip("LIBERO assets are installed here")
    with pytest.raises(SimError, match="lerobot/libero-assets") as err:
        make_env("libero_spatial_task")
    assert "\n" not in str(err.value) and "--local-dir" in str(err.value)


def test_unknown_suite_and_missing_extra(monkeypatch) -> None:
    with pytest.raises(SimError, match="libero_goal"):
        libero.suite_tasks("libero_100")
    with pytest.raises(SimError, match="libero_spatial"):
        resolve_task("libero", "libero_100")
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda n, *a: _missing(n) if n.startswith("libero") else real(n))
    with pytest.raises(SimError, match=r"pip install 'apprentice\[libero\]'"):
        libero.suite_tasks("libero_10")


def _missing(name: str):
    raise ImportError(f"No module named {name!r}")
