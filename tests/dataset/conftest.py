"""Fixtures for dataset tests: small real datasets (real parquet, real AV1/H.264 mp4) built by our writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dataset_fake_hub import FakeHub
from dataset_helpers import FEATURES, write_episodes

from apprentice.dataset import DatasetWriter


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    def make(lengths: list[int], name: str = "ds", **kwargs) -> Path:
        root = tmp_path / name
        with DatasetWriter.create(root, features=FEATURES, fps=30, robot_type="test_arm", **kwargs) as w:
            write_episodes(w, lengths)
        return root

    return make


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A loopback Hub that huggingface_hub talks to (HF_ENDPOINT), with its own HF_HOME."""
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("HF_TOKEN", "hf_loopback_test_token")
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        yield fake
