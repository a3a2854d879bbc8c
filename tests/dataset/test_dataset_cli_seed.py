"""`apprentice dataset push|visualize` with the seed's push_dataset_to_hub.py / visualize_dataset.py spellings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dataset_fake_hub import FakeHub

from apprentice.dataset import cli
from apprentice.dataset.hub import write_card

REPO = "someone/so101_test"


def _calls(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(target, name, lambda *a, **k: seen.append((a, k)) or 0)
    return seen


def test_push_raw_dir_is_push_root(make_dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    import apprentice.dataset.hub as hub

    root = make_dataset([3])
    pushed = _calls(monkeypatch, hub, "push")
    assert cli.main(["push", "--raw-dir", str(root), "--repo-id", REPO, "--raw-format", "lerobot"]) == 0
    assert cli.main(["push", str(root), REPO]) == 0
    assert len(pushed) == 2 and pushed[0] == pushed[1]
    assert pushed[0][0] == (root, REPO)


def test_push_other_raw_formats_say_what_to_do(make_dataset, capsys: pytest.CaptureFixture) -> None:
    root = make_dataset([3])
    assert cli.main(["push", "--raw-dir", str(root), "--repo-id", REPO, "--raw-format", "aloha_hdf5"]) == 1
    err = capsys.readouterr().err
    assert "--raw-format aloha_hdf5: only 'lerobot'" in err and "apprentice convert" in err
    with pytest.raises(SystemExit):
        cli.main(["push", "--raw-dir", str(root)])  # no repo id


def test_tags_go_into_the_dataset_card(make_dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = make_dataset([3])
    card = write_card(root, tags=["so101", "tutorial"])
    front = yaml.safe_load(card.read_text().split("---")[1])
    assert front["tags"] == ["LeRobot", "so101", "tutorial"]  # where lerobot's push_to_hub puts them
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("HF_TOKEN", "hf_loopback_test_token")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        assert cli.main(["push", "--raw-dir", str(root), "--repo-id", REPO, "--tags", "eval"]) == 0
        uploaded = fake.commits[fake.refs[REPO]["main"]]["README.md"].decode()
    assert yaml.safe_load(uploaded.split("---")[1])["tags"] == ["LeRobot", "eval"]


def test_visualize_seed_spellings(make_dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = make_dataset([3, 2])
    shown = _calls(monkeypatch, cli, "_visualize")
    assert cli.main(["visualize", str(root), "--episode", "1"]) == 0
    assert cli.main(["visualize", "--root", str(root), "--episode-index", "1"]) == 0
    parent = tmp_path / "data"
    (parent / "someone").mkdir(parents=True)
    (parent / REPO).symlink_to(root)
    assert cli.main(["visualize", "--repo-id", REPO, "--root", str(parent), "--episode-index", "1"]) == 0
    monkeypatch.setenv("HF_LEROBOT_HOME", str(parent))
    assert cli.main(["visualize", "--repo-id", REPO, "--episode-index", "1"]) == 0
    assert [(a[0][0].episode, a[0][0].output) for a in shown] == [(1, None)] * 4
    assert [a[0][0].root for a in shown] == [root, root, parent / REPO, parent / REPO]


def test_visualize_repo_not_pulled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path))
    assert cli.main(["visualize", "--repo-id", REPO]) == 1
    assert f"apprentice dataset pull {REPO}" in capsys.readouterr().err
