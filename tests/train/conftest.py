"""Training test fixtures: one torch thread, a tiny dataset per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import write_tiny_dataset


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest single-threaded (on a loaded 2-core CI box ~7x faster); restored after.
    Module scope: set before module-scoped runs (act_run), so a resumed run uses the same thread count —
    bit-for-bit equality on CPU needs the same reduction order."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")
