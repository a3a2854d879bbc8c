"""pretrained_path.py: a policy flag names a pretrained_model/ directory; pickles are refused, never loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.pretrained_path import PretrainedPathError, check_pretrained_dir


def test_pickle_file_is_refused_with_the_directory_to_pass(tmp_path: Path) -> None:
    pt = tmp_path / "outputs/train/checkpoints/last.pt"
    pt.parent.mkdir(parents=True)
    pt.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(PretrainedPathError) as err:
        check_pretrained_dir(pt, "-p")
    message = str(err.value)
    assert message.startswith(f"-p {pt}: a pickle file") and "never unpickles" in message
    assert str(tmp_path / "outputs/train/checkpoints/last/pretrained_model") in message
    # the seed's path typed as is, not there at all: the same advice
    with pytest.raises(PretrainedPathError, match=r"last/pretrained_model"):
        check_pretrained_dir("outputs/train/checkpoints/last.pt", "-p")


def test_directories(tmp_path: Path) -> None:
    with pytest.raises(PretrainedPathError, match="no such directory"):
        check_pretrained_dir(tmp_path / "nope")
    with pytest.raises(PretrainedPathError, match=r"no config\.json"):
        check_pretrained_dir(tmp_path)
    (tmp_path / "ckpt/pretrained_model").mkdir(parents=True)
    (tmp_path / "ckpt/pretrained_model/config.json").write_text("{}")
    assert check_pretrained_dir(tmp_path / "ckpt/pretrained_model") == tmp_path / "ckpt/pretrained_model"
    assert check_pretrained_dir(tmp_path / "ckpt") == tmp_path / "ckpt"  # checkpoints/<step>, as load_policy
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(PretrainedPathError, match="a file, not a directory"):
        check_pretrained_dir(notes)
