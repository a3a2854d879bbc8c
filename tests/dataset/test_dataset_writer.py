"""DatasetWriter: round trips through our reader, file roll-overs, exact video timing, append via open()."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from dataset_helpers import FEATURES, REF_ROOT, frame_value, write_episodes

from apprentice.dataset import DatasetError, DatasetWriter, LeRobotDataset
from apprentice.dataset.verify import verify

LENGTHS = [12, 7, 15, 9]


def assert_sample_matches(ds: LeRobotDataset, i: int) -> None:
    item = ds[i]
    e, f = int(item["episode_index"]), int(item["frame_index"])
    want = frame_value(e, f)
    np.testing.assert_array_equal(item["observation.state"].numpy(), want["observation.state"])
    np.testing.assert_array_equal(item["action"].numpy(), want["action"])
    assert bool(item["observation.gripper_open"]) == bool(want["observation.gripper_open"][0])
    assert item["language.note"] == want["language.note"]
    assert item["task"] == f"task {e % 2}"
    assert float(item["timestamp"]) == pytest.approx(f / 30, abs=1e-6)
    image = item["observation.images.top"]
    assert image.shape == (3, 32, 48) and image.dtype.is_floating_point
    # Lossy codec: compare flat colour areas within a few levels.
    got = (image[:, 24, 40] * 255).numpy()
    assert abs(got[0] - want["observation.images.top"][24, 40, 0]) <= 6
    assert abs(got[1] - want["observation.images.top"][24, 40, 1]) <= 6


def test_round_trip_with_rollovers(make_dataset) -> None:
    # Tiny size limits force every kind of roll-over: data files, video files and episodes-meta files.
    root = make_dataset(LENGTHS, data_files_size_in_mb=0.004, video_files_size_in_mb=0.004)
    ds = LeRobotDataset(root)
    assert len(ds) == sum(LENGTHS) and ds.num_episodes == 4 and ds.meta.tasks == ["task 0", "task 1"]
    eps = ds.meta.episodes
    assert len({e["data/file_index"] for e in eps}) > 1
    assert len({e["videos/observation.images.top/file_index"] for e in eps}) > 1
    assert len({e["meta/episodes/file_index"] for e in eps}) > 1
    for i in range(len(ds)):
        assert_sample_matches(ds, i)
    np.testing.assert_array_equal(ds.column("index"), np.arange(len(ds)))
    assert ds.column("observation.state").shape == (len(ds), 6)
    assert verify(root)["episodes"] == 4


def test_small_chunks_size_rolls_into_new_chunks_and_reads_back(make_dataset) -> None:
    """info.json's chunks_size (files per chunk) is honoured by the reader too, not assumed to be 1000."""
    root = make_dataset(LENGTHS, data_files_size_in_mb=0.004, video_files_size_in_mb=0.004, chunks_size=2)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 4 and len(ds) == sum(LENGTHS)
    assert max(e["meta/episodes/chunk_index"] for e in ds.meta.episodes) >= 1
    for i in range(len(ds)):
        assert_sample_matches(ds, i)
    assert verify(root)["episodes"] == 4
    with DatasetWriter.open(root) as w:  # recovery reads the episodes the same way
        write_episodes(w, [3], first_episode=4)
    assert LeRobotDataset(root).num_episodes == 5


def test_many_episodes_share_files_and_match_lerobot_layout(make_dataset) -> None:
    root = make_dataset(LENGTHS)
    info = json.loads((root / "meta/info.json").read_text())
    ref = json.loads(Path("/work/shared/data/lerobot_ref/meta/info.json").read_text())
    assert set(info) == set(ref)
    assert info["total_episodes"] == 4 and info["total_frames"] == sum(LENGTHS) and info["splits"] == {"train": "0:4"}
    assert info["features"]["observation.images.top"]["info"]["video.codec"] == "av1"
    assert list(info["features"])[-5:] == list(ref["features"])[-5:]
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json",
        "meta/stats.json", "meta/tasks.parquet", "videos/observation.images.top/chunk-000/file-000.mp4"]
    data = pq.ParquetFile(root / "data/chunk-000/file-000.parquet")
    assert data.num_row_groups == 4  # one row group per episode, as lerobot writes
    ref_schema = pq.read_schema("/work/shared/data/lerobot_ref/data/chunk-000/file-000.parquet")
    for name in ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert data.schema_arrow.field(name).type == ref_schema.field(name).type
    ref_eps = pq.read_schema("/work/shared/data/lerobot_ref/meta/episodes/chunk-000/file-000.parquet")
    ours = pq.read_schema(root / "meta/episodes/chunk-000/file-000.parquet")
    for field in ref_eps:
        assert ours.field(field.name).type == field.type, field.name
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pandas()
    assert tasks.index.tolist() == ["task 0", "task 1"] and tasks["task_index"].tolist() == [0, 1]


@pytest.mark.parametrize("vcodec", ["libsvtav1", "h264"])
def test_video_pts_are_exact(make_dataset, vcodec: str) -> None:
    root = make_dataset([10, 6, 8], vcodec=vcodec)
    ds = LeRobotDataset(root)
    with av.open(str(root / "videos/observation.images.top/chunk-000/file-000.mp4")) as c:
        stream = c.streams.video[0]
        times = [Fraction(f.pts) * stream.time_base for f in c.decode(stream)]
    assert times == [Fraction(i, 30) for i in range(24)]
    for ep in ds.meta.episodes:
        start = ep["videos/observation.images.top/from_timestamp"]
        assert start * 30 == pytest.approx(ep["dataset_from_index"], abs=1e-9)
    frames = ds.episode_frames(1, "observation.images.top")
    assert frames.shape == (6, 32, 48, 3) and frames.dtype == np.uint8
    assert np.abs(frames[:, 24, 40, 0].astype(int) - [i * 9 for i in range(6)]).max() <= 6


def test_open_appends_to_existing_dataset(make_dataset) -> None:
    root = make_dataset([8, 5])
    with DatasetWriter.open(root) as w:
        write_episodes(w, [6, 4], first_episode=2)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 4 and len(ds) == 23
    # The first episode after open() starts a new video file (the old one's encoder settings are unknown).
    assert ds.meta.episodes[2]["videos/observation.images.top/file_index"] == 1
    assert ds.meta.episodes[2]["videos/observation.images.top/from_timestamp"] == 0.0
    assert ds.meta.episodes[3]["videos/observation.images.top/from_timestamp"] == pytest.approx(6 / 30)
    for i in (0, 12, 13, 22):
        assert_sample_matches(ds, i)
    verify(root)


def test_clear_episode_buffer_discards_frames(tmp_path: Path) -> None:
    with DatasetWriter.create(tmp_path / "ds", features=FEATURES, fps=30) as w:
        for i in range(5):
            w.add_frame(frame_value(0, i))
        w.clear_episode_buffer()
        for i in range(3):
            w.add_frame(frame_value(0, i))
        assert w.save_episode(task="t") == 0
    ds = LeRobotDataset(tmp_path / "ds")
    assert len(ds) == 3 and ds.meta.episodes[0]["length"] == 3
    assert not (tmp_path / "ds/.staging").exists()


def test_bad_frames_are_rejected_with_the_feature_name(tmp_path: Path) -> None:
    w = DatasetWriter.create(tmp_path / "ds", features=FEATURES, fps=30)
    frame = frame_value(0, 0)
    with pytest.raises(DatasetError, match=r"observation\.state"):
        w.add_frame({**frame, "observation.state": np.zeros(5, np.float32)})
    with pytest.raises(DatasetError, match=r"observation\.images\.top"):
        w.add_frame({**frame, "observation.images.top": np.zeros((10, 10, 3), np.uint8)})
    with pytest.raises(DatasetError, match="unknown"):
        w.add_frame({**frame, "extra": 1})
    with pytest.raises(DatasetError, match="no task"):
        w.add_frame(frame)
        w.save_episode()
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter.create(tmp_path / "ds", features=FEATURES, fps=30)
    with pytest.raises(DatasetError, match="dtype"):
        DatasetWriter.create(tmp_path / "ds2", features={"x": {"dtype": "complex", "shape": [1]}}, fps=30)
    w.finalize()


def test_numeric_only_dataset_has_no_video_path(tmp_path: Path) -> None:
    features = {"observation.state": FEATURES["observation.state"], "action": FEATURES["action"]}
    with DatasetWriter.create(tmp_path / "ds", features=features, fps=10) as w:
        for i in range(4):
            w.add_frame({"observation.state": np.full(6, i, np.float32), "action": np.zeros(6), "task": "a"})
        w.save_episode()
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["video_path"] is None
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.camera_keys == [] and ds[3]["observation.state"].tolist() == [3.0] * 6


def test_open_appends_to_a_dataset_real_lerobot_wrote(tmp_path: Path) -> None:
    root = tmp_path / "ref"
    shutil.copytree(REF_ROOT, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    with DatasetWriter.open(root) as w:
        for i in range(20):
            image = np.zeros((48, 64, 3), np.uint8)
            image[..., 0], image[..., 2] = 200, 10 * i
            w.add_frame({"observation.state": np.full(6, i, np.float32), "action": np.full(6, -i, np.float32),
                         "observation.images.top": image, "task": "new task"})
        assert w.save_episode() == 3
    assert verify(root)["frames"] == 155
    ds = LeRobotDataset(root)
    assert ds.meta.tasks[-1] == "new task"
    first_file = ds.meta.episodes[2]["videos/observation.images.top/file_index"]
    assert ds.meta.episodes[3]["videos/observation.images.top/file_index"] == first_file + 1
    assert ds.meta.episodes[3]["videos/observation.images.top/from_timestamp"] == 0.0
    assert abs(float(ds[154]["observation.images.top"][2, 10, 10]) * 255 - 190) <= 6
    # lerobot's own episodes are untouched.
    np.testing.assert_allclose(ds[44]["observation.images.top"].mean(dim=(1, 2)).numpy(), [0.6828, 0.0002, 0.0419],
                               atol=1.5e-4)


def test_reader_decodes_lerobot_image_features(tmp_path: Path) -> None:
    """lerobot's `image` dtype stores PNG bytes in the data parquet; build one and read it back exactly."""
    features = {"observation.state": FEATURES["observation.state"]}
    with DatasetWriter.create(tmp_path / "ds", features=features, fps=30) as w:
        for i in range(5):
            w.add_frame({"observation.state": np.full(6, i, np.float32), "task": "t"})
        w.save_episode()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 12, 16, 3), dtype=np.uint8)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = 16, 12, "rgb24"
    png = [bytes(codec.encode(av.VideoFrame.from_ndarray(im, format="rgb24"))[0]) for im in images]
    path = tmp_path / "ds/data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    column = pa.array([{"bytes": b, "path": None} for b in png],
                      type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(table.append_column("observation.images.wrist", column), path)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    info["features"]["observation.images.wrist"] = {"dtype": "image", "shape": [12, 16, 3],
                                                   "names": ["height", "width", "channels"]}
    (tmp_path / "ds/meta/info.json").write_text(json.dumps(info))
    ds = LeRobotDataset(tmp_path / "ds", delta_timestamps={"observation.images.wrist": [-1 / 30, 0.0]})
    assert ds.camera_keys == ["observation.images.wrist"]
    item = ds[3]
    assert item["observation.images.wrist"].shape == (2, 3, 12, 16)
    expected = torch.from_numpy(images[2:4]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(item["observation.images.wrist"], expected)
    np.testing.assert_array_equal(ds.episode_frames(0, "observation.images.wrist"), images)  # training's path


def test_reused_caller_buffers_do_not_leak_into_saved_frames(tmp_path: Path) -> None:
    # Camera drivers and ROS callbacks often hand the same array back with new contents.
    state = np.zeros(6, np.float32)
    image = np.zeros((32, 48, 3), np.uint8)
    features = {k: FEATURES[k] for k in ("observation.state", "observation.images.top")}
    with DatasetWriter.create(tmp_path / "ds", features=features, fps=30) as w:
        for i in range(6):
            state[:] = i
            image[:] = 40 * i
            w.add_frame({"observation.state": state, "observation.images.top": image, "task": "t"})
        w.save_episode()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.column("observation.state")[:, 0].tolist() == [0, 1, 2, 3, 4, 5]
    means = ds.episode_frames(0, "observation.images.top").reshape(6, -1).mean(axis=1)
    assert np.abs(means - 40 * np.arange(6)).max() <= 4


def test_failed_save_leaves_the_dataset_and_writer_consistent(make_dataset, monkeypatch) -> None:
    root = make_dataset([5, 4])
    w = DatasetWriter.open(root)
    write_episodes(w, [3], first_episode=2)
    original = DatasetWriter._commit_row

    def disk_full(self, row):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DatasetWriter, "_commit_row", disk_full)
    for i in range(6):
        w.add_frame(frame_value(3, i))
    with pytest.raises(OSError):
        w.save_episode(task="lost")
    monkeypatch.setattr(DatasetWriter, "_commit_row", original)
    write_episodes(w, [4], first_episode=3)  # the writer carries on from the committed state
    w.finalize()
    ds = LeRobotDataset(root)
    assert [ep["length"] for ep in ds.meta.episodes] == [5, 4, 3, 4] and "lost" not in ds.meta.tasks
    assert verify(root)["frames"] == 16
    frames = ds.episode_frames(3, "observation.images.top")
    assert np.abs(frames[:, 24, 40, 0].astype(int) - [0, 9, 18, 27]).max() <= 6


def test_encoder_backlog_is_bounded_and_then_drains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stalled encoder makes `put` wait once `buffer_s` of frames queue up, instead of growing memory."""
    import threading

    from apprentice.dataset.video import EpisodeEncoder

    release = threading.Event()
    real_from_ndarray = av.VideoFrame.from_ndarray

    def stalled(*args, **kwargs):
        release.wait(30)
        return real_from_ndarray(*args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", stalled)
    encoder = EpisodeEncoder(tmp_path / "ep.mp4", fps=10, vcodec="h264", buffer_s=0.5)  # room for 5 frames
    frame = np.zeros((64, 64, 3), np.uint8)
    producer = threading.Thread(target=lambda: [encoder.put(frame) for _ in range(12)], daemon=True)
    producer.start()
    producer.join(timeout=1.0)
    assert producer.is_alive()  # waiting for room: 1 frame in the encoder's hands + 5 queued < 12
    assert encoder._queue.qsize() == 5
    release.set()
    producer.join(timeout=30)
    assert not producer.is_alive()
    assert encoder.finish() == 12
    with av.open(str(tmp_path / "ep.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12


def test_reopening_with_other_encoder_settings_starts_a_new_video_file(make_dataset) -> None:
    """libx264's headers depend on the CRF: appending packets of another CRF behind the first file's header
    decodes to wrong pixels with no error, so the first episode after a reopen goes into a new file."""
    root = make_dataset([8, 5], vcodec="h264", crf=23)
    with DatasetWriter.open(root) as w:  # the default CRF (30) this time
        write_episodes(w, [6, 3], first_episode=2)
    ds = LeRobotDataset(root)
    files = [ds.meta.episodes[e]["videos/observation.images.top/file_index"] for e in range(4)]
    assert files == [0, 0, 1, 1]
    for i in range(len(ds)):
        assert_sample_matches(ds, i)
    verify(root)


def test_timestamps_off_the_fps_grid_are_refused_at_add_frame(tmp_path: Path) -> None:
    with DatasetWriter.create(tmp_path / "ds", features=FEATURES, fps=30) as w:
        w.add_frame({**frame_value(0, 0), "timestamp": 0.0})
        w.add_frame({**frame_value(0, 1), "timestamp": 1 / 30 + 5e-5})  # within lerobot's 1e-4 s tolerance
        with pytest.raises(DatasetError, match=r"frame 2 has timestamp 0\.071000 .* resample onto the 30 fps grid"):
            w.add_frame({**frame_value(0, 2), "timestamp": 0.071})  # a raw sensor stamp
        w.add_frame(frame_value(0, 2))  # the refused frame left nothing behind: this is frame 2
        assert w.save_episode(task="t") == 0
    ds = LeRobotDataset(tmp_path / "ds")
    assert len(ds) == 3 and verify(tmp_path / "ds")["frames"] == 3
