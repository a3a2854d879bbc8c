"""BagWriter output is a rosbag2 bag other readers accept; truncated MCAP is read up to the cut; salvage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from recorder_bagmaker import JOINTS, joint_state, write_bag

from apprentice.bag import BagError
from apprentice.bag.reader import BagReader, header_stamp_ns
from apprentice.bag.salvage import is_complete, salvage
from apprentice.bag.writer import BagWriter

T0 = 1_700_000_000_000_000_000


def _messages(n: int) -> list:
    return [
        (
            "joint_states",
            "sensor_msgs/msg/JointState",
            T0 + i * 10_000_000,
            joint_state(T0 + i * 10_000_000, np.full(6, float(i))),
        )
        for i in range(n)
    ]


def test_rosbags_reads_our_bag_with_metadata(tmp_path: Path) -> None:
    """rosbags (an independent rosbag2 implementation) opens the bag through metadata.yaml."""
    from rosbags.highlevel import AnyReader

    bag = write_bag(tmp_path / "ep", _messages(50))
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap" and info["message_count"] == 50
    assert info["relative_file_paths"] == ["ep_0.mcap"]
    topic = info["topics_with_message_count"][0]
    assert topic["topic_metadata"]["name"] == "/joint_states" and topic["message_count"] == 50
    assert topic["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
    assert info["duration"]["nanoseconds"] == 490_000_000
    with AnyReader([bag]) as reader:
        rows = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]
        qos = reader.connections[0].ext.offered_qos_profiles
    assert len(qos) == 1 and qos[0].reliability.name == "RELIABLE" and qos[0].depth == 10
    assert len(rows) == 50 and rows[7][1] == T0 + 70_000_000
    assert list(rows[7][2].name) == JOINTS and rows[7][2].position[0] == 7.0


def test_writer_refuses_existing_dir_and_undeclared_topic(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(BagError, match="already exists"):
        BagWriter(tmp_path / "x")
    with BagWriter(tmp_path / "y") as w, pytest.raises(BagError, match="'joint_states' was not declared"):
        w.write("joint_states", b"", 0)


def test_header_stamp_fast_path(tmp_path: Path) -> None:
    data = joint_state(T0 + 123, np.zeros(6))
    assert header_stamp_ns(data) == T0 + 123


def _killed_bag(tmp_path: Path, n: int, cut: int) -> Path:
    """A bag as a SIGKILL leaves it: the MCAP without summary/footer, cut mid-record; no metadata.yaml."""
    bag = tmp_path / "killed"
    w = BagWriter(bag, chunk_size=4096, chunk_interval_s=0)
    w.add_topic("joint_states", "sensor_msgs/msg/JointState")
    for topic, _, log, data in _messages(n):
        w.write(topic, data, log)
    w._file.flush()
    size = (bag / "killed_0.mcap").stat().st_size
    with open(bag / "killed_0.mcap", "r+b") as f:
        f.truncate(size - cut)
    return bag


@pytest.mark.parametrize("cut", [0, 1, 100, 2000])
def test_truncated_mcap_reads_up_to_last_complete_chunk(tmp_path: Path, cut: int) -> None:
    bag = _killed_bag(tmp_path, 200, cut)
    reader = BagReader(bag)
    assert reader.truncated
    got = [reader.deserializer(m.topic)(m.data).position[0] for m in reader.messages()]
    assert 150 < len(got) <= 200
    assert got == [float(i) for i in range(len(got))]  # a prefix, in order, nothing corrupted


def test_salvage_makes_a_complete_bag_and_keeps_the_original(tmp_path: Path) -> None:
    bag = _killed_bag(tmp_path, 200, 100)
    assert not is_complete(bag)
    expected = sum(1 for _ in BagReader(bag).messages())
    out, count = salvage(bag)
    assert out == bag and count == expected and is_complete(bag)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["custom_data"] == {"apprentice.salvaged": "true"} and info["message_count"] == count
    reader = BagReader(bag)
    assert not reader.truncated and sum(1 for _ in reader.messages()) == count
    assert (tmp_path / "killed.interrupted" / "killed_0.mcap").is_file()
    with pytest.raises(BagError, match="complete bag"):
        salvage(bag)


def test_salvage_of_an_empty_recording(tmp_path: Path) -> None:
    bag = tmp_path / "empty"
    bag.mkdir()
    (bag / "empty_0.mcap").write_bytes(b"\x89MCAP0\r\n")
    assert salvage(bag) == (None, 0)
    assert not bag.exists() and (tmp_path / "empty.interrupted").is_dir()
    shutil.rmtree(tmp_path / "empty.interrupted")


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_compressed_chunks_roundtrip(tmp_path: Path, compression: str) -> None:
    with BagWriter(tmp_path / "c", compression=compression, chunk_size=2048) as w:
        w.add_topic("joint_states", "sensor_msgs/msg/JointState")
        for topic, _, log, data in _messages(40):
            w.write(topic, data, log)
    reader = BagReader(tmp_path / "c")
    got = [reader.deserializer(m.topic)(m.data).position[0] for m in reader.messages()]
    assert got == [float(i) for i in range(40)] and not reader.truncated


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical_frame"])
@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "16UC1"])
def test_image_view_matches_the_generic_decoder(frame_id: str, encoding: str) -> None:
    from recorder_bagmaker import TS

    from apprentice.bag.reader import image_view

    stamp = TS.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2)
    header = TS.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)
    pixels = np.random.default_rng(0).integers(0, 255, 37, dtype=np.uint8)
    msg = TS.types["sensor_msgs/msg/Image"](
        header=header, height=3, width=4, encoding=encoding, is_bigendian=1, step=13, data=pixels
    )
    view = image_view(bytes(TS.serialize_cdr(msg, "sensor_msgs/msg/Image")))
    assert (view.height, view.width, view.encoding, view.is_bigendian, view.step) == (3, 4, encoding, 1, 13)
    assert bytes(view.data) == pixels.tobytes()
