"""`apprentice eval` with the seed's eval.py spellings: `-p` is --policy.path; a pickle is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.sim.eval_cli import _build_parser
from apprentice.sim.eval_cli import main as eval_main


def test_seed_eval_command_parses_as_ours(tmp_path: Path) -> None:
    rest = ["--env.type=pusht", "--eval.n_episodes=50", "--eval.batch_size=10"]
    seed = _build_parser().parse_args(["-p", str(tmp_path), *rest])
    ours = _build_parser().parse_args([f"--policy.path={tmp_path}", *rest])
    assert seed == ours
    assert (seed.policy_path, seed.env_type, seed.n_episodes, seed.batch_size) == (str(tmp_path), "pusht", 50, 10)


def test_pickle_checkpoint_is_refused_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pt = tmp_path / "outputs/train/checkpoints/last.pt"
    pt.parent.mkdir(parents=True)
    pt.write_bytes(b"\x80\x04")
    assert eval_main(["-p", str(pt), "--env.type=pusht", "--eval.n_episodes=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("apprentice eval: error: --policy.path") and "never unpickles" in err
    assert "checkpoints/last/pretrained_model" in err
