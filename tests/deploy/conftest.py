"""A small real ACT checkpoint for the sim reach contract, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import write_tiny_act


@pytest.fixture(scope="session")
def tiny_act(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_act(tmp_path_factory.mktemp("tiny_act"))
