"""SmolVLA fixtures: the tiny SmolVLM2 dir (config + tokenizer) and the two-task dataset, once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from smolvla_helpers import write_dataset, write_vlm


@pytest.fixture(scope="session")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vlm(tmp_path_factory.mktemp("smolvlm") / "tiny-smolvlm2")


@pytest.fixture(scope="session")
def two_task_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("smolvla-data") / "two-tasks")
