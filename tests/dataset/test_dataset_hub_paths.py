"""Where pulled datasets and derived caches live: lerobot's (and huggingface_hub's) environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_fake_hub import FakeHub

from apprentice.dataset import DatasetError, LeRobotDataset
from apprentice.dataset.hub import default_root, hf_datasets_cache, hf_home, push

REPO = "someone/paths"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("HF_HOME", "HF_LEROBOT_HOME", "HF_DATASETS_CACHE", "XDG_CACHE_HOME", "LEROBOT_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_cache_dirs_follow_hf_variables_in_lerobots_order(clean_env, tmp_path):
    home = tmp_path / "home"
    assert hf_home() == home / ".cache/huggingface"
    assert default_root(REPO) == home / ".cache/huggingface/lerobot" / REPO
    assert hf_datasets_cache() == home / ".cache/huggingface/datasets"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root(REPO) == tmp_path / "xdg/huggingface/lerobot" / REPO
    clean_env.setenv("HF_HOME", "~/hf")
    assert default_root(REPO) == home / "hf/lerobot" / REPO and hf_datasets_cache() == home / "hf/datasets"
    clean_env.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    clean_env.setenv("HF_DATASETS_CACHE", str(tmp_path / "dc"))
    assert default_root(REPO) == tmp_path / "lr" / REPO and hf_datasets_cache() == tmp_path / "dc"
    clean_env.setenv("LEROBOT_HOME", str(tmp_path / "old"))
    with pytest.raises(DatasetError, match=r"LEROBOT_HOME=.* is deprecated.*HF_LEROBOT_HOME"):
        default_root(REPO)


def test_a_pulled_repo_is_read_from_hf_lerobot_home_without_the_network(make_dataset, hub: FakeHub, monkeypatch,
                                                                         tmp_path):
    push(make_dataset([5, 4]), REPO)
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot_home"))
    first = LeRobotDataset(REPO)
    assert Path(first.store.root) == tmp_path / "lerobot_home" / REPO and len(first) == 9
    asked = len(hub.requests)
    again = LeRobotDataset(REPO)  # as lerobot: a local copy is used as it is
    assert len(again) == 9 and len(hub.requests) == asked


def test_training_with_root_and_repo_id_pulls_into_root(make_dataset, hub: FakeHub, tmp_path):
    from apprentice.train import TrainConfig
    from apprentice.train.build import open_dataset

    push(make_dataset([4]), REPO)
    into = tmp_path / "into"
    ds = open_dataset(TrainConfig.from_args([f"--dataset.repo_id={REPO}", f"--dataset.root={into}"]))
    assert len(ds) == 4 and (into / "meta" / "info.json").is_file()  # as lerobot-train: root is the repo's home
