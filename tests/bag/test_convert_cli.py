"""`apprentice convert`: many bags (parallel processes), a broken bag skipped with its name, --append."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from recorder_bagmaker import arm_episode, contract_file, write_bag

from apprentice.bag.convert import iter_episode
from apprentice.bag.convert_cli import main
from apprentice.bag.keys import parse_keys
from apprentice.contract import load_contract
from apprentice.dataset import LeRobotDataset


def test_convert_parallel_skips_bad_bag_and_keeps_the_rest(tmp_path: Path, capsys) -> None:
    contract = contract_file(tmp_path)
    bags = tmp_path / "bags"
    for i in range(3):
        write_bag(bags / f"ep{i}", arm_episode(seconds=0.5, seed=i)[0])
    msgs, _ = arm_episode(seconds=0.5)
    write_bag(bags / "ep1_broken", [m for m in msgs if m[0] != "cameras/top/image_raw"])
    out = tmp_path / "ds"
    rc = main(
        [
            "--bags",
            str(bags),
            "--contract",
            str(contract),
            "--out",
            str(out),
            "--workers",
            "2",
            "--vcodec",
            "h264",
        ]
    )
    assert rc == 1
    captured = capsys.readouterr()
    assert "converted 3/4 bags" in captured.out and "1 skipped" in captured.out
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 3
    # bag order is kept: ep0, ep1, ep2 (ep1_broken sorts between and is skipped)
    expected = [iter_episode(bags / f"ep{i}", load_contract(contract))[0].frames for i in range(3)]
    assert [ep["length"] for ep in ds.meta.episodes] == expected
    assert np.allclose(ds.column("action"), ds.column("observation.state") + 1, atol=1e-6)

    # same dataset again without --append: refused, nothing touched
    assert main(["--bags", str(bags / "ep0"), "--contract", str(contract), "--out", str(out)]) == 1
    assert "--append" in capsys.readouterr().err
    assert main(["--bags", str(bags / "ep0"), "--contract", str(contract), "--out", str(out), "--append"]) == 0
    assert LeRobotDataset(out).num_episodes == 4


def test_convert_missing_contract(tmp_path: Path, capsys) -> None:
    write_bag(tmp_path / "b", arm_episode(seconds=0.2)[0])
    assert (
        main(
            [
                "--bags",
                str(tmp_path / "b"),
                "--contract",
                str(tmp_path / "no.yaml"),
                "--out",
                str(tmp_path / "ds"),
            ]
        )
        == 1
    )
    assert "no.yaml does not exist" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_parse_keys() -> None:
    assert parse_keys(b"\x1b[C") == ["right"]
    assert parse_keys(b"\x1b[D\x1bOC") == ["left", "right"]
    assert parse_keys(b"\x1b") == ["escape"]
    assert parse_keys(b"abc\x1b[A") == []
