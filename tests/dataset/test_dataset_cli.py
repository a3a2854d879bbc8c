"""`apprentice dataset info|verify|repair|visualize`, and one-line errors on damaged datasets."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_helpers import REF_ROOT

from apprentice.cli import main as apprentice_main
from apprentice.dataset import DatasetError, LeRobotDataset
from apprentice.dataset.cli import main

DATA = "data/chunk-000/file-000.parquet"
VIDEO = "videos/observation.images.top/chunk-000/file-000.mp4"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_info_and_verify_on_lerobots_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "info", str(REF_ROOT))
    assert rc == 0 and "3 episodes, 135 frames at 30 fps" in out and "pick up the red cube" in out
    rc, out, _ = run(capsys, "info", str(REF_ROOT), "--json")
    assert rc == 0 and json.loads(out)["features"]["observation.images.top"]["dtype"] == "video"
    rc, out, _ = run(capsys, "verify", str(REF_ROOT))
    assert rc == 0 and out.startswith("OK") and "3 episodes" in out


def test_dispatch_through_apprentice_cli(make_dataset, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset([4, 3])
    assert apprentice_main(["dataset", "verify", str(root)]) == 0
    assert "2 episodes, 7 frames" in capsys.readouterr().out


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _set_info(root: Path, edit: Callable[[dict], None]) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    edit(info)
    (root / "meta/info.json").write_text(json.dumps(info))


def _edit_column(path: Path, name: str, edit: Callable[[np.ndarray], np.ndarray]) -> None:
    table = pq.read_table(path)
    column = table.column(name).to_numpy()
    i = table.column_names.index(name)
    pq.write_table(table.set_column(i, name, pa.array(edit(column.copy()), type=table.schema.field(name).type)),
                   path)


def _drop_column(path: Path, name: str) -> None:
    table = pq.read_table(path)
    pq.write_table(table.drop_columns([name]), path)


EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def _shift_frame(values: np.ndarray) -> np.ndarray:
    values[3] += 0.5
    return values


def _skip_index(values: np.ndarray) -> np.ndarray:
    values[7:] += 1
    return values


DAMAGES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "timestamp off the fps grid": (lambda r: _edit_column(r / DATA, "timestamp", _shift_frame), DATA,
                                   "timestamp"),
    "index gap": (lambda r: _edit_column(r / DATA, "index", _skip_index), DATA, "episode 1"),
    "missing video": (lambda r: (r / VIDEO).unlink(), VIDEO, "missing"),
    "truncated video": (lambda r: _truncate(r / VIDEO), VIDEO, "video"),
    "truncated parquet": (lambda r: _truncate(r / DATA), DATA, "truncated or corrupt"),
    "features mismatch": (lambda r: _set_info(r, lambda i: i["features"]["action"].update(shape=[7])),
                          DATA, "'action'"),
    "undeclared dtype": (lambda r: _set_info(r, lambda i: i["features"]["action"].update(dtype="float64")),
                         DATA, "'action'"),
    "wrong codebase_version": (lambda r: _set_info(r, lambda i: i.update(codebase_version="v2.1")),
                               "meta/info.json", "v2.1"),
    "broken info.json": (lambda r: (r / "meta/info.json").write_text("{not json"), "meta/info.json",
                         "not valid JSON"),
    "missing episodes meta": (lambda r: (r / "meta/episodes/chunk-000/file-000.parquet").unlink(),
                              "meta/episodes", "restore"),
    "features not objects": (lambda r: _set_info(r, lambda i: i.update(features="x")), "meta/info.json",
                             "'features'"),
    "stats not objects": (lambda r: (r / "meta/stats.json").write_text("[]"), "meta/stats.json",
                          "each feature"),
    "episodes lack a column": (lambda r: _drop_column(r / EPISODES, "length"), "meta/episodes", "'length'"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_dataset_gets_one_line_error(make_dataset, tmp_path: Path, damage: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset([6, 5], name=f"ds-{damage.replace(' ', '-')}")
    apply, file, words = DAMAGES[damage]
    apply(root)
    rc, out, err = run(capsys, "verify", str(root))
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert file in err and words in err, err
    assert "Traceback" not in err
    if damage != "truncated video":  # a truncated mp4 may still decode its first frames
        with pytest.raises(DatasetError):
            ds = LeRobotDataset(root)
            for i in range(len(ds)):
                ds[i]


def test_repair_reports_and_is_idempotent(make_dataset, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset([5, 4])
    shutil.copy(root / DATA, root / "data/chunk-000/file-001.parquet")  # a stray roll-over file
    (root / ".staging").mkdir()
    (root / ".staging/observation.images.top-episode-000002.mp4").write_bytes(b"partial")
    rc, out, _ = run(capsys, "repair", str(root))
    assert rc == 0 and "file-001.parquet" in out and ".staging" in out
    rc, out, _ = run(capsys, "repair", str(root))
    assert rc == 0 and "nothing to repair" in out
    assert run(capsys, "verify", str(root))[0] == 0


def test_missing_root_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "info", str(tmp_path / "nope"))
    assert rc == 1 and "meta/info.json: missing" in err


def test_visualize_writes_an_html_page_with_video_and_plots(make_dataset, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset([6, 4])
    out = tmp_path / "ep1.html"
    rc, stdout, _ = run(capsys, "visualize", str(root), "--episode", "1", "--output", str(out))
    assert rc == 0 and stdout.strip() == str(out)
    page = out.read_text()
    assert page.count("data:video/mp4;base64,") == 1
    assert "<h3>observation.state</h3>" in page and "<h3>action</h3>" in page and "j5" in page
    assert "4 frames at 30 fps" in page and "task 1" in page
    rc, _, err = run(capsys, "visualize", str(root), "--episode", "7", "--output", str(out))
    assert rc == 1 and "out of range" in err
