"""convert-v21: a v2.1 dataset written from its published layout -> v3.0, checked by loading both."""

from __future__ import annotations

import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from dataset_fake_hub import FakeHub
from dataset_v21 import CAMERAS, EPISODES, IMAGE_KEY, TASKS, read_v21_episode, write_v21

from apprentice.dataset import DatasetError, DatasetWriter, LeRobotDataset
from apprentice.dataset.cli import main
from apprentice.dataset.convert_v21 import convert_v21, convert_v21_from_hub
from apprentice.dataset.verify import verify

TOP = "observation.images.top"


@pytest.fixture(scope="module")
def v21_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_v21(tmp_path_factory.mktemp("v21") / "src")


@pytest.fixture
def v21_copy(v21_source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(v21_source, tmp_path / "src_copy"))


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_as_source(src: Path, out: Path, exact_video: set[tuple[int, str]] | None = None) -> LeRobotDataset:
    """Every episode of `out` holds the source's rows and decoded frames; `exact_video` limits which
    (episode, camera) pairs must decode bit-identically (the others were re-encoded)."""
    ds = LeRobotDataset(out)
    assert ds.meta.tasks == TASKS
    assert ds.num_episodes == len(EPISODES)
    start = 0
    for e, (length, task_index) in enumerate(EPISODES):
        table, frames = read_v21_episode(src, e)
        ep = ds.meta.episodes[e]
        assert (ep["dataset_from_index"], ep["dataset_to_index"], ep["length"]) == (start, start + length, length)
        assert set(ep["tasks"]) == {TASKS[t] for t in task_index}
        rows = slice(start, start + length)
        for key in ("action", "observation.state"):
            np.testing.assert_array_equal(ds.column(key)[rows], np.stack(table.column(key).to_numpy(False)))
        for key in ("timestamp", "frame_index", "episode_index", "index", "task_index", "next.done"):
            np.testing.assert_array_equal(ds.column(key)[rows], table.column(key).to_numpy())
        if IMAGE_KEY in frames:  # PNG cells: lossless both ways
            np.testing.assert_array_equal(ds.episode_frames(e, IMAGE_KEY), frames[IMAGE_KEY])
        for key in [k for k in CAMERAS if k in frames]:
            got = ds.episode_frames(e, key)
            if exact_video is None or (e, key) in exact_video:
                np.testing.assert_array_equal(got, frames[key], err_msg=f"episode {e} {key}")
            else:
                assert got.shape == frames[key].shape
                assert np.abs(got.astype(int) - frames[key]).mean() < 4, f"episode {e} {key} re-encoded badly"
        sample = ds[start + length - 1]
        assert sample["task"] == TASKS[task_index[-1]] and int(sample["frame_index"]) == length - 1
        if exact_video is None and TOP in frames:
            np.testing.assert_array_equal((sample[TOP].numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0),
                                          frames[TOP][-1])
        start += length
    return ds


def test_converted_dataset_loads_identical_to_the_v21_source(v21_copy: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = _digest(v21_copy)
    out = tmp_path / "v30"
    assert main(["convert-v21", str(v21_copy), "--out", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    assert _digest(v21_copy) == before  # the source is only read
    ds = assert_same_as_source(v21_copy, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json",
        "meta/stats.json", "meta/tasks.parquet", f"videos/{TOP}/chunk-000/file-000.mp4",
        "videos/observation.images.wrist/chunk-000/file-000.mp4"]
    assert not list(tmp_path.glob(".*converting"))

    # info.json as lerobot's convert_info leaves it.
    src_info = json.loads((v21_copy / "meta/info.json").read_text())
    info = ds.meta.info
    assert info["codebase_version"] == "v3.0" and "total_chunks" not in info and "total_videos" not in info
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 43, 3)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["robot_type"] == "so101_follower" and info["splits"] == {"train": "0:4"}
    assert info["features"][TOP]["info"] == src_info["features"][TOP]["info"]
    assert all(ft["fps"] == 30 for ft in info["features"].values() if ft["dtype"] != "video")

    # Stats: each episode's row carries its v2.1 stats; stats.json aggregates them (count-weighted).
    legacy = [json.loads(line)["stats"] for line in (v21_copy / "meta/episodes_stats.jsonl").read_text().split("\n")
              if line]
    for e, row in enumerate(ds.meta.episodes):
        for key in ("action", TOP, "timestamp"):
            for stat in ("min", "max", "mean", "std", "count"):
                np.testing.assert_allclose(row[f"stats/{key}/{stat}"], legacy[e][key][stat])
    counts = np.array([s["action"]["count"][0] for s in legacy])
    stats = ds.meta.stats
    np.testing.assert_allclose(stats["action"]["mean"], ds.column("action").mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], ds.column("action").std(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(stats["action"]["max"], ds.column("action").max(axis=0))
    assert int(stats["action"]["count"][0]) == counts.sum() == len(ds)
    image_means = np.stack([s[TOP]["mean"] for s in legacy])
    image_counts = np.array([s[TOP]["count"][0] for s in legacy], dtype=float)
    np.testing.assert_allclose(stats[TOP]["mean"], (image_means * image_counts[:, None, None, None]).sum(0)
                               / image_counts.sum())
    # The quantiles v2.1 never stored are computed for numeric features, inside [min, max].
    assert np.all(stats["action"]["q01"] >= stats["action"]["min"]) and np.all(
        stats["action"]["q99"] <= stats["action"]["max"])
    assert "q50" not in stats[TOP]


def test_small_file_limits_roll_over_into_several_files(v21_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "v30"
    convert_v21(v21_copy, out, data_files_size_in_mb=0.004, video_files_size_in_mb=0.004)
    ds = assert_same_as_source(v21_copy, out)
    data_files = {(ep["data/chunk_index"], ep["data/file_index"]) for ep in ds.meta.episodes}
    video_files = [ep[f"videos/{TOP}/file_index"] for ep in ds.meta.episodes]
    assert len(data_files) > 1 and len(set(video_files)) > 1
    assert video_files == sorted(video_files)
    # Inside a file, episodes follow each other: from_timestamp is the frames before them / fps.
    for prev, ep in zip(ds.meta.episodes, ds.meta.episodes[1:]):
        if ep[f"videos/{TOP}/file_index"] == prev[f"videos/{TOP}/file_index"]:
            assert ep[f"videos/{TOP}/from_timestamp"] == pytest.approx(prev[f"videos/{TOP}/to_timestamp"])
        else:
            assert ep[f"videos/{TOP}/from_timestamp"] == 0


def test_a_dataset_without_cameras_and_appending_after_the_conversion(tmp_path: Path) -> None:
    src = write_v21(tmp_path / "src", cameras=False)
    out = tmp_path / "v30"
    convert_v21(src, out)
    ds = LeRobotDataset(out)
    assert ds.meta.info["video_path"] is None and ds.camera_keys == []
    np.testing.assert_array_equal(ds.column("action")[:12], np.stack(pq.read_table(
        src / "data/chunk-000/episode_000000.parquet").column("action").to_numpy(False)))
    # The converted dataset is an ordinary v3.0 dataset: the writer continues it.
    with DatasetWriter.open(out) as w:
        for i in range(5):
            w.add_frame({"action": np.zeros(6, np.float32), "observation.state": np.ones(6, np.float32),
                         "next.done": np.array([i == 4])})
        assert w.save_episode(task=TASKS[1]) == 4
    verify(out)
    ds = LeRobotDataset(out)
    assert len(ds) == 48 and ds[47]["task"] == TASKS[1] and int(ds[47]["task_index"]) == 1


def test_image_features_are_carried_over_cell_for_cell(tmp_path: Path) -> None:
    src = write_v21(tmp_path / "src", image_feature=True)
    out = tmp_path / "v30"
    convert_v21(src, out)
    ds = assert_same_as_source(src, out)
    assert ds.features[IMAGE_KEY]["dtype"] == "image" and ds.camera_keys[0] == IMAGE_KEY
    cells = pq.read_table(out / "data/chunk-000/file-000.parquet").column(IMAGE_KEY).to_pylist()
    source = [c for e in range(len(EPISODES)) for c in read_v21_episode(src, e)[0].column(IMAGE_KEY).to_pylist()]
    assert cells == source  # PNG bytes and paths as they were
    assert np.shape(ds.meta.stats[IMAGE_KEY]["mean"]) == (3, 1, 1)
    with DatasetWriter.open(out) as w, pytest.raises(DatasetError, match=r"'image' features .* not recorded"):
        w.add_frame({})


def _h264(crf: str) -> dict:
    return {"vcodec": "libx264", "options": {"g": "2", "crf": crf, "bf": "0"}}


@pytest.mark.parametrize("overrides", [{2: _h264("23")}, {0: _h264("23"), 1: _h264("23"), 2: _h264("30"),
                                                           3: _h264("23")}],
                         ids=["h264_among_av1", "h264_with_another_crf"])
def test_an_episode_with_another_codec_header_goes_into_its_own_file(tmp_path: Path, overrides: dict) -> None:
    """Packets are only appended behind an identical codec header; an H.264 episode among AV1 ones, or
    one encoded with another CRF (libx264's SPS/PPS depend on it), starts a new file, still copied."""
    src = write_v21(tmp_path / "src", video_overrides=overrides)
    out = tmp_path / "v30"
    summary = convert_v21(src, out)
    assert summary["reencoded"] == []
    ds = assert_same_as_source(src, out)
    assert [ep[f"videos/{TOP}/file_index"] for ep in ds.meta.episodes] == [0, 0, 1, 2]
    assert [ep["videos/observation.images.wrist/file_index"] for ep in ds.meta.episodes] == [0, 0, 0, 0]


def test_frames_off_the_fps_grid_are_reencoded_with_a_note(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Millisecond pts cannot hold 1/30 s exactly: shifting packets would put frames off the v3.0 grid.
    src = write_v21(tmp_path / "src", video_overrides={1: {"time_base": Fraction(1, 1000)}})
    out = tmp_path / "v30"
    assert main(["convert-v21", str(src), "--out", str(out)]) == 0
    assert f"note: episode 1 {TOP}: frames not at pts i/fps, re-encoded" in capsys.readouterr().out
    exact = {(e, k) for e in range(len(EPISODES)) for k in CAMERAS} - {(1, TOP)}
    assert_same_as_source(src, out, exact_video=exact)
    verify(out)


def _rewrite_jsonl(path: Path, keep: int) -> None:
    lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in lines[:keep]))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda r: (r / "meta/episodes_stats.jsonl").unlink(), r"episodes_stats\.jsonl: missing"),
    (lambda r: (r / f"videos/chunk-000/{TOP}/episode_000002.mp4").unlink(),
     r"episode_000002\.mp4: missing; episode 2 of camera 'observation\.images\.top' is half-written"),
    (lambda r: (r / "data/chunk-000/episode_000003.parquet").unlink(), r"episode_000003\.parquet: missing"),
    (lambda r: pq.write_table(pq.read_table(r / "data/chunk-000/episode_000001.parquet").slice(0, 4),
                              r / "data/chunk-000/episode_000001.parquet"),
     r"episode_000001\.parquet: holds 4 frames but .* episode 1 has 7; the episode is half-written"),
    (lambda r: shutil.copy(r / f"videos/chunk-000/{TOP}/episode_000001.mp4",
                           r / f"videos/chunk-000/{TOP}/episode_000003.mp4"),
     r"episode_000003\.mp4: holds 7 frames but episode 3 has 9; the episode is half-written"),
    (lambda r: _rewrite_jsonl(r / "meta/episodes.jsonl", 3),
     r"episodes\.jsonl: holds 3 episodes but meta/info\.json says 4; episode 3 is half-written"),
    (lambda r: shutil.copy(r / "data/chunk-000/episode_000003.parquet", r / "data/chunk-000/episode_000004.parquet"),
     r"episode_000004\.parquet: episode 4 has files but no row in meta/episodes\.jsonl .*half-written"),
    (lambda r: (r / "meta/tasks.jsonl").write_text('{"task_index": 0, "task": "a"}\n{"task_index": 1, "ta'),
     r"tasks\.jsonl:2: not valid JSON"),
])
def test_damaged_sources_are_refused_and_leave_nothing(v21_copy: Path, tmp_path: Path, damage, message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    damage(v21_copy)
    out = tmp_path / "v30"
    with pytest.raises(DatasetError, match=message):
        convert_v21(v21_copy, out)
    assert not out.exists() and not list(tmp_path.glob(".*converting"))
    assert main(["convert-v21", str(v21_copy), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_other_versions_and_an_existing_out_are_refused(v21_copy: Path, make_dataset, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"codebase_version is 'v3\.0'.*already v3\.0: load it as it is"):
        convert_v21(make_dataset([3]), tmp_path / "a")
    info = json.loads((v21_copy / "meta/info.json").read_text())
    (v21_copy / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.0"}))
    with pytest.raises(DatasetError, match=r"'v2\.0'.*convert_dataset_v20_to_v21"):
        convert_v21(v21_copy, tmp_path / "b")
    (v21_copy / "meta/info.json").write_text(json.dumps(info))
    (tmp_path / "c").mkdir()
    with pytest.raises(DatasetError, match=r"c: already exists; pass a new --out"):
        convert_v21(v21_copy, tmp_path / "c")
    with pytest.raises(DatasetError, match=r"nowhere/meta/info\.json: missing; pass the root of a LeRobot v2\.1"):
        convert_v21(tmp_path / "nowhere", tmp_path / "d")


def test_the_reader_points_v21_datasets_at_convert_v21(v21_source: Path) -> None:
    with pytest.raises(DatasetError, match=r"codebase_version is 'v2\.1'.*apprentice dataset convert-v21 .*--out"):
        LeRobotDataset(v21_source)


# ---------------------------------------------------------------- from the Hub (loopback)
REPO = "someone/legacy_v21"


def test_convert_v21_pulls_the_v21_revision_from_the_hub(v21_source: Path, hub: FakeHub, tmp_path: Path) -> None:
    # A Hub dataset as lerobot 0.3 left it: files on main, tagged "v2.1", no "v3.0" tag.
    hub.commits["c21"] = {p.relative_to(v21_source).as_posix(): p.read_bytes()
                          for p in v21_source.rglob("*") if p.is_file()}
    hub.refs[REPO] = {"main": "c21", "v2.1": "c21"}
    with pytest.raises(DatasetError, match=rf"no revision 'v3\.0'.*convert-v21 --repo-id {REPO}"):
        LeRobotDataset(REPO)
    out = tmp_path / "v30"
    assert main(["convert-v21", "--repo-id", REPO, "--out", str(out)]) == 0
    assert any(p == f"/api/datasets/{REPO}/revision/v2.1" for _, p in hub.requests)
    assert_same_as_source(v21_source, out)
    assert (tmp_path / "hf_home/lerobot/someone/legacy_v21_v21/meta/episodes.jsonl").is_file()
    del hub.refs[REPO]["v2.1"]
    with pytest.raises(DatasetError, match=r"no revision 'v2\.1'"):
        convert_v21_from_hub(REPO, tmp_path / "again", download_dir=tmp_path / "dl")
