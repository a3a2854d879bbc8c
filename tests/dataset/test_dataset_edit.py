"""Each edit operation on generated datasets, then verify + load: frames, actions, tasks, indices, stats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_helpers import FEATURES, HEIGHT, WIDTH, frame_value, write_episodes

from apprentice.dataset import DatasetError, DatasetWriter, LeRobotDataset, edit
from apprentice.dataset.cli import main
from apprentice.dataset.stats import numeric_stats
from apprentice.dataset.verify import verify
from apprentice.dataset.video import VideoSegment
from apprentice.dataset.writer import EncodedEpisode

NUMERIC = ["observation.state", "action", "observation.gripper_open", "timestamp", "frame_index", "index",
           "episode_index", "task_index"]


def _loaded(root: Path) -> LeRobotDataset:
    verify(root)
    ds = LeRobotDataset(root)
    assert np.array_equal(ds.column("index"), np.arange(ds.num_frames))  # contiguous after renumbering
    for e, ep in enumerate(ds.meta.episodes):
        assert ep["episode_index"] == e
        rows = ds.column("episode_index") == e
        assert np.array_equal(ds.column("frame_index")[rows], np.arange(ep["length"]))
    return ds


def _assert_episode_is(ds: LeRobotDataset, e: int, source: LeRobotDataset, src_e: int) -> None:
    """Episode `e` of an edited dataset holds episode `src_e` of the source: rows, task, identical frames."""
    rows, src_rows = ds.column("episode_index") == e, source.column("episode_index") == src_e
    for key in ("observation.state", "action", "observation.gripper_open", "timestamp", "frame_index"):
        assert np.array_equal(ds.column(key)[rows], source.column(key)[src_rows]), key
    assert list(ds.column("language.note")[rows]) == list(source.column("language.note")[src_rows])
    assert ds.meta.episodes[e]["tasks"] == source.meta.episodes[src_e]["tasks"]
    for key in ds.meta.video_keys:  # packets were copied: the decoded pixels are bit-identical
        assert np.array_equal(ds.episode_frames(e, key), source.episode_frames(src_e, key))


def _assert_stats_match(ds: LeRobotDataset, reference: LeRobotDataset, keys: list[str]) -> None:
    for key in keys:
        for stat, want in reference.meta.stats[key].items():
            np.testing.assert_allclose(ds.meta.stats[key][stat], want, rtol=1e-6, atol=1e-6, err_msg=f"{key} {stat}")


def _reference(tmp_path: Path, episodes: list[tuple[int, int]]) -> LeRobotDataset:
    """What the writer records for these (source episode, length) contents, numbered 0..N-1."""
    root = tmp_path / "reference"
    with DatasetWriter.create(root, features=FEATURES, fps=30, robot_type="test_arm") as w:
        for e, length in episodes:
            write_episodes(w, [length], first_episode=e)
    return LeRobotDataset(root)


def test_delete_episodes_renumbers_and_recomputes_stats(make_dataset, tmp_path):
    src = make_dataset([5, 6, 7, 8])
    out = edit.delete_episodes(src, [1, 2], out=tmp_path / "out")
    ds, source = _loaded(out), LeRobotDataset(src)
    assert (ds.num_episodes, ds.num_frames) == (2, 13)
    _assert_episode_is(ds, 0, source, 0)
    _assert_episode_is(ds, 1, source, 3)
    assert np.array_equal(ds.column("observation.state")[5], frame_value(3, 0)["observation.state"])
    assert ds.meta.tasks == ["task 0", "task 1"]
    # The stats equal those of a dataset recorded with only these two episodes, camera stats included.
    _assert_stats_match(ds, _reference(tmp_path, [(0, 5), (3, 8)]), [*NUMERIC, "observation.images.top"])
    per_episode = ds.meta.episodes[1]
    assert per_episode["stats/index/min"] == [5] and per_episode["stats/episode_index/max"] == [1]


def test_delete_refuses_bad_episode_lists(make_dataset, tmp_path):
    src = make_dataset([3, 3])
    with pytest.raises(DatasetError, match=r"episodes \[7\] are not in"):
        edit.delete_episodes(src, [7], out=tmp_path / "o")
    with pytest.raises(DatasetError, match="deletes every episode"):
        edit.delete_episodes(src, [0, 1], out=tmp_path / "o")
    assert edit.parse_episode_list("0,2,5-7") == [0, 2, 5, 6, 7]
    with pytest.raises(DatasetError, match="neither N nor N-M"):
        edit.parse_episode_list("1;2")
    assert not (tmp_path / "o").exists()


def test_split_by_fractions_and_by_lists(make_dataset, tmp_path):
    src = make_dataset([4, 5, 6, 3, 7])
    source = LeRobotDataset(src)
    roots = edit.split_dataset(src, edit.parse_splits(["train=0.6", "val=0.4"]), out=tmp_path / "frac")
    train, val = _loaded(roots["train"]), _loaded(roots["val"])
    assert (train.num_episodes, val.num_episodes) == (3, 2)
    _assert_episode_is(train, 2, source, 2)
    _assert_episode_is(val, 0, source, 3)
    _assert_stats_match(val, _reference(tmp_path, [(3, 3), (4, 7)]), NUMERIC)

    roots = edit.split_dataset(src, edit.parse_splits(["a=4,0", "b=1-2"]), out=tmp_path / "lists")
    a, b = _loaded(roots["a"]), _loaded(roots["b"])
    _assert_episode_is(a, 0, source, 0)
    _assert_episode_is(a, 1, source, 4)
    _assert_episode_is(b, 1, source, 2)


def test_split_rules():
    assert edit.resolve_splits({"train": 0.8, "val": 0.2}, 10) == {"train": list(range(8)), "val": [8, 9]}
    assert [len(v) for v in edit.resolve_splits({"a": 0.33, "b": 0.33, "c": 0.34}, 10).values()] == [3, 3, 4]
    assert edit.resolve_splits({"a": 0.5}, 5) == {"a": [0, 1]}  # fractions below 1 leave the rest out
    with pytest.raises(DatasetError, match="sum to at most 1"):
        edit.resolve_splits({"a": 0.8, "b": 0.3}, 10)
    with pytest.raises(DatasetError, match="not both"):
        edit.resolve_splits({"a": 0.5, "b": [1]}, 10)
    with pytest.raises(DatasetError, match="given twice"):
        edit.parse_splits(["a=0.5", "a=0.5"])


def test_split_refuses_overlap_and_empty(make_dataset, tmp_path):
    src = make_dataset([3, 3, 3])
    with pytest.raises(DatasetError, match=r"episodes \[1\] are in more than one split"):
        edit.split_dataset(src, {"a": [0, 1], "b": [1, 2]}, out=tmp_path / "o")
    with pytest.raises(DatasetError, match="split 'b' gets no episode"):
        edit.split_dataset(src, {"a": 0.5, "b": 0.2}, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_merge_concatenates_and_unions_tasks(make_dataset, tmp_path):
    a, b = make_dataset([4, 5], name="a"), make_dataset([6, 3, 2], name="b")
    out = edit.merge_datasets([a, b], out=tmp_path / "ab")
    ds, sa, sb = _loaded(out), LeRobotDataset(a), LeRobotDataset(b)
    assert (ds.num_episodes, ds.num_frames) == (5, 20)
    _assert_episode_is(ds, 1, sa, 1)
    _assert_episode_is(ds, 2, sb, 0)
    _assert_episode_is(ds, 4, sb, 2)
    assert ds.meta.tasks == ["task 0", "task 1"]
    _assert_stats_match(ds, _reference(tmp_path, [(0, 4), (1, 5), (0, 6), (1, 3), (2, 2)]),
                        [*NUMERIC, "observation.images.top"])


def test_merge_refuses_mismatches_naming_the_dataset(make_dataset, tmp_path):
    a = make_dataset([3], name="a")

    def other(name: str, **kwargs) -> Path:
        features = kwargs.pop("features", FEATURES)
        args = {"fps": 30, "robot_type": "test_arm", **kwargs}
        with DatasetWriter.create(tmp_path / name, features=features, **args) as w:
            for i in range(3):
                w.add_frame({k: v for k, v in frame_value(0, i).items() if k in features})
            w.save_episode(task="t")
        return tmp_path / name

    cases = [
        (other("fps15", fps=15), r"fps15 vs .*a: fps 15 != 30"),
        (other("robot", robot_type="koch"), r"robot_type 'koch' != 'test_arm'"),
        (other("nonote", features={k: v for k, v in FEATURES.items() if k != "language.note"}),
         r"features differ — only in .*a: \['language.note'\]"),
        (other("wide", features={**FEATURES, "action": {"dtype": "float32", "shape": [6], "names": None}}),
         r"feature 'action' is \('float32', \[6\], None\)"),
        (other("h264", vcodec="h264"), r"camera 'observation.images.top' is h264 there but av1 .*reencode-videos"),
    ]
    for bad, message in cases:
        with pytest.raises(DatasetError, match=message):
            edit.merge_datasets([a, bad], out=tmp_path / "ab")
    assert not (tmp_path / "ab").exists()
    assert main(["merge", str(a), str(cases[0][0]), "--out", str(tmp_path / "ab")]) == 1


def test_remove_feature_drops_camera_and_its_videos(make_dataset, tmp_path):
    src = make_dataset([4, 5])
    out = edit.remove_feature(src, ["observation.images.top", "language.note"], out=tmp_path / "out")
    ds = _loaded(out)
    assert "observation.images.top" not in ds.features and "language.note" not in ds.features
    assert not (out / "videos").exists() and ds.meta.info["video_path"] is None
    assert "observation.images.top" not in ds.meta.stats
    assert not any(c.startswith("videos/") for c in ds.meta.episodes[0])
    assert np.array_equal(ds.column("action"), LeRobotDataset(src).column("action"))
    with pytest.raises(DatasetError, match=r"\['index'\] are required by the format"):
        edit.remove_feature(src, ["index"], out=tmp_path / "o")
    with pytest.raises(DatasetError, match=r"\['nope'\] is not a feature"):
        edit.remove_feature(src, ["nope"], out=tmp_path / "o")


def test_modify_tasks_precedence(make_dataset, tmp_path):
    src = make_dataset([3, 4, 5])  # tasks: task 0, task 1, task 0
    out = edit.modify_tasks(src, replacements={"task 0": "pick the cube"}, episode_tasks={2: "special"},
                            out=tmp_path / "r")
    ds = _loaded(out)
    assert [ep["tasks"] for ep in ds.meta.episodes] == [["pick the cube"], ["task 1"], ["special"]]
    assert [ds[i]["task"] for i in (0, 3, 7)] == ["pick the cube", "task 1", "special"]
    assert ds.meta.tasks == ["pick the cube", "task 1", "special"]
    assert ds.meta.info["total_tasks"] == 3
    ds = _loaded(edit.modify_tasks(src, new_task="one task", out=tmp_path / "n"))
    assert ds.meta.tasks == ["one task"] and set(ds.column("task_index")) == {0}
    with pytest.raises(DatasetError, match=r"\['nope'\] are not tasks"):
        edit.modify_tasks(src, replacements={"nope": "x"}, out=tmp_path / "x")


def test_recompute_stats_restores_damaged_stats(make_dataset, tmp_path):
    src = make_dataset([6, 4])
    before = json.loads((src / "meta/stats.json").read_text())
    damaged = {k: {s: np.zeros_like(np.array(v)).tolist() for s, v in ft.items()} for k, ft in before.items()}
    (src / "meta/stats.json").write_text(json.dumps(damaged))
    edit.recompute_stats(src, images=True, in_place=True)
    ds = _loaded(src)
    after = json.loads((src / "meta/stats.json").read_text())
    for key in NUMERIC:
        for stat in before[key]:
            np.testing.assert_allclose(after[key][stat], before[key][stat], rtol=1e-6, err_msg=f"{key} {stat}")
    # Camera stats come from decoded (lossy) frames now: close to the recorded ones, not equal.
    np.testing.assert_allclose(after["observation.images.top"]["mean"], before["observation.images.top"]["mean"],
                               atol=0.02)
    state = ds.column("observation.state")
    np.testing.assert_allclose(ds.meta.stats["observation.state"]["mean"], state.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ds.meta.episodes[1]["stats/observation.state/max"],
                               numeric_stats(state[6:])["max"])


def test_reencode_videos_changes_codec_keeps_frames(make_dataset, tmp_path):
    src = make_dataset([5, 7])
    out = edit.reencode_videos(src, vcodec="h264", crf=10, gop=4, out=tmp_path / "h264")
    ds, source = _loaded(out), LeRobotDataset(src)
    assert ds.features["observation.images.top"]["info"]["video.codec"] == "h264"
    for e in range(2):
        got, want = ds.episode_frames(e, "observation.images.top"), source.episode_frames(e, "observation.images.top")
        assert got.shape == want.shape and np.abs(got.astype(int) - want).mean() < 2.0
    assert np.array_equal(ds.column("action"), source.column("action"))
    # Each episode was encoded on its own, so it starts on a keyframe and later edits still copy packets.
    _assert_episode_is(_loaded(edit.delete_episodes(out, [0], out=tmp_path / "d")), 0, ds, 1)


def _image_dataset(src: Path, root: Path) -> Path:
    """An `image`-feature dataset (PNG cells, as lerobot stores images) with the frames of `src`'s camera."""
    import av

    source = LeRobotDataset(src)
    features = {**source.features, "observation.images.top": {"dtype": "image", "shape": [HEIGHT, WIDTH, 3],
                                                               "names": ["height", "width", "channels"]}}
    reader = edit.Source(src)
    with DatasetWriter.create(root, features=features, fps=30, robot_type="test_arm") as writer:
        for e in range(source.num_episodes):
            rows = source.column("episode_index") == e
            cells = []
            for frame in source.episode_frames(e, "observation.images.top"):
                png = av.VideoFrame.from_ndarray(frame, format="rgb24")
                encoder = av.CodecContext.create("png", "w")
                encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "rgb24"
                cells.append({"bytes": b"".join(bytes(p) for p in encoder.encode(png)), "path": None})
            columns = {k: source.column(k)[rows] for k in writer.features if k != "observation.images.top"}
            columns["observation.images.top"] = np.array(cells, dtype=object)
            writer.save_encoded_episodes([EncodedEpisode(columns, np.arange(rows.sum()) / 30,
                                                         reader.frame_tasks(reader.rows(e)),
                                                         stats=reader.visual_stats(e))])
    return root


def test_convert_image_to_video(make_dataset, tmp_path):
    src = make_dataset([5, 6])
    images = _image_dataset(src, tmp_path / "images")
    image_ds = _loaded(images)
    assert image_ds.features["observation.images.top"]["dtype"] == "image"
    out = edit.convert_image_to_video(images, vcodec="h264", crf=0, out=tmp_path / "video")
    ds = _loaded(out)
    assert ds.features["observation.images.top"]["dtype"] == "video"
    assert ds.features["observation.images.top"]["info"]["video.codec"] == "h264"
    for e in range(2):
        want = image_ds.episode_frames(e, "observation.images.top")
        got = ds.episode_frames(e, "observation.images.top")
        assert np.abs(got.astype(int) - want).mean() < 3.0  # yuv420p rounding only
    assert not any(f.suffix == ".parquet" and "image" in f.name for f in out.rglob("*"))
    assert ds.meta.stats["observation.images.top"]["mean"].shape == (3, 1, 1)
    with pytest.raises(DatasetError, match="has no image features"):
        edit.convert_image_to_video(src, out=tmp_path / "again")


def test_segment_off_a_keyframe_is_reencoded(make_dataset, tmp_path):
    src = make_dataset([12])
    source, reader = LeRobotDataset(src), edit.Source(src)
    rows = slice(1, 11)  # frames 1..10: frame 1 is between keyframes (GOP 2)
    segment = reader.segment(0, "observation.images.top")
    with DatasetWriter.create(tmp_path / "cut", features=source.features, fps=30, robot_type="test_arm") as w:
        columns = {k: source.column(k)[rows] for k in w.features if k != "observation.images.top"}
        w.save_encoded_episodes([EncodedEpisode(
            columns, np.arange(10) / 30, reader.frame_tasks(reader.rows(0))[rows],
            {"observation.images.top": VideoSegment(segment.path, 1, 11)}, reader.visual_stats(0))])
    got = _loaded(tmp_path / "cut").episode_frames(0, "observation.images.top")
    want = source.episode_frames(0, "observation.images.top")[1:11]
    assert np.abs(got.astype(int) - want).mean() < 3.0


def test_lerobot_reference_dataset_edits(tmp_path):
    from dataset_helpers import REF_ROOT

    if not REF_ROOT.exists():
        pytest.skip("shared/data/lerobot_ref not present")
    out = edit.merge_datasets([REF_ROOT, REF_ROOT], out=tmp_path / "twice")
    ds, ref = _loaded(out), LeRobotDataset(REF_ROOT)
    assert ds.num_episodes == 6
    for e in range(3):
        assert np.array_equal(ds.episode_frames(3 + e, "observation.images.top"),
                              ref.episode_frames(e, "observation.images.top"))
    deleted = _loaded(edit.delete_episodes(REF_ROOT, [0], out=tmp_path / "del"))
    assert np.array_equal(deleted.column("action"), ref.column("action")[45:])


def test_edits_across_rolled_over_files(make_dataset, tmp_path):
    src = make_dataset([9, 7, 8, 6, 9], data_files_size_in_mb=0.001, video_files_size_in_mb=0.001)
    source = LeRobotDataset(src)
    assert len({source.meta.episode_video_rel(ep, "observation.images.top") for ep in source.meta.episodes}) > 1
    ds = _loaded(edit.delete_episodes(src, [1], out=tmp_path / "out"))
    assert len(list((tmp_path / "out" / "data").rglob("*.parquet"))) > 1
    assert len(list((tmp_path / "out" / "videos").rglob("*.mp4"))) > 1
    for e, src_e in enumerate([0, 2, 3, 4]):
        _assert_episode_is(ds, e, source, src_e)


def test_merge_keeps_one_codec_header_per_file(make_dataset, tmp_path):
    # libx264 writes its settings into the stream header: packets of another CRF need a file of their own.
    a = make_dataset([5, 4], name="a", vcodec="h264", crf=30)
    b = make_dataset([6], name="b", vcodec="h264", crf=18)
    ds = _loaded(edit.merge_datasets([a, b], out=tmp_path / "ab"))
    files = [ds.meta.episode_video_rel(ep, "observation.images.top") for ep in ds.meta.episodes]
    assert files[0] == files[1] != files[2]
    assert ds.meta.episodes[2]["videos/observation.images.top/from_timestamp"] == 0.0
    _assert_episode_is(ds, 1, LeRobotDataset(a), 1)
    _assert_episode_is(ds, 2, LeRobotDataset(b), 0)
