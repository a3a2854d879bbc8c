"""Bag -> dataset episode: alignment on the fps grid, drops, clocks, bad input, real bags from rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from recorder_bagmaker import (
    CONTRACT,
    JOINTS,
    arm_episode,
    contract_file,
    float_array,
    frame_image,
    image,
    joint_state,
    write_bag,
)

from apprentice.bag import BagError
from apprentice.bag.convert import convert_bag, iter_episode
from apprentice.contract import contract_from_dict, load_contract
from apprentice.dataset import DatasetWriter, LeRobotDataset

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bags"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/bags")


def _writer(root: Path, contract) -> DatasetWriter:
    return DatasetWriter.create(
        root, features=contract.features, fps=contract.fps, robot_type=contract.robot_type, vcodec="h264"
    )


def _expected_state(truth: list, ticks: np.ndarray) -> np.ndarray:
    stamps = np.array([s for s, _ in truth])
    order = np.argsort(stamps, kind="stable")
    idx = np.searchsorted(stamps[order], ticks, side="right") - 1
    return np.stack([truth[order[i]][1] for i in idx])


def test_aligned_values_match_published(tmp_path: Path) -> None:
    msgs, truth = arm_episode(seconds=1.0)
    bag = write_bag(tmp_path / "ep", msgs)
    contract = load_contract(contract_file(tmp_path))
    report, frames = iter_episode(bag, contract)
    frames = list(frames)
    assert report.dropped == 0 and report.frames == len(frames) == report.ticks
    start = max(truth["js"][0][0], truth["cam"][0][0])
    ticks = start + np.arange(len(frames)) * 1_000_000_000 // 30
    expect = _expected_state(truth["js"], ticks)
    np.testing.assert_array_equal(np.stack([f["observation.state"] for f in frames]), expect.astype(np.float32))
    # the leader publishes joints in reversed order with +1: the contract reorders them by name
    np.testing.assert_array_equal(np.stack([f["action"] for f in frames]), (expect + 1).astype(np.float32))
    cam_idx = _expected_state([(s, np.array([i])) for s, i in truth["cam"]], ticks)[:, 0]
    for f, i in zip(frames, cam_idx):
        np.testing.assert_array_equal(f["observation.images.top"], frame_image(int(i)))
    # never a future message: every chosen camera stamp is at or before its tick
    cam_stamps = np.array([s for s, _ in truth["cam"]])
    assert (cam_stamps[cam_idx] <= ticks).all()


def test_convert_into_dataset_and_read_back(tmp_path: Path) -> None:
    contract = load_contract(contract_file(tmp_path))
    bags = [write_bag(tmp_path / f"ep{i}", arm_episode(seconds=0.5, seed=i)[0]) for i in range(2)]
    w = _writer(tmp_path / "ds", contract)
    reports = [convert_bag(b, contract, w) for b in bags]
    w.finalize()
    assert [r.episode_index for r in reports] == [0, 1]
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2 and ds.num_frames == sum(r.frames for r in reports)
    state, action = ds.column("observation.state"), ds.column("action")
    np.testing.assert_allclose(action, state + 1, atol=1e-6)
    assert ds[0]["task"] == "test task"


def test_stale_camera_drops_ticks_and_rejects_episode(tmp_path: Path) -> None:
    msgs, _ = arm_episode(seconds=1.0)
    cam = [m for m in msgs if m[0].startswith("cameras")]
    gap = {m[2] for m in cam[10:16]}  # 200 ms without frames
    bag = write_bag(tmp_path / "gap", [m for m in msgs if m[2] not in gap])
    contract = load_contract(contract_file(tmp_path))
    report, frames = iter_episode(bag, contract)
    assert report.dropped > 0
    assert set(report.dropped_by_key) == {"observation.images.top"}
    assert len(list(frames)) == report.ticks - report.dropped
    strict = load_contract(contract_file(tmp_path, CONTRACT.replace("max_drop_ratio: 0.2", "max_drop_ratio: 0.01")))
    w = _writer(tmp_path / "ds", strict)
    with pytest.raises(BagError, match=r"episode rejected.*observation.images.top \d+"):
        convert_bag(bag, strict, w)
    assert w.num_episodes == 0 and w.episode_buffer_size == 0


def test_out_of_order_and_duplicated_stamps(tmp_path: Path) -> None:
    msgs, _ = arm_episode(seconds=0.5, jitter_ms=0)
    js = [m for m in msgs if m[0] == "joint_states"]
    shuffled = list(msgs)
    # swap receive order of two joint_states messages and duplicate one (same stamp, re-sent)
    i, j = shuffled.index(js[10]), shuffled.index(js[11])
    shuffled[i], shuffled[j] = (
        (js[11][0], js[11][1], js[10][2], js[11][3]),
        (js[10][0], js[10][1], js[11][2], js[10][3]),
    )
    shuffled.append((js[20][0], js[20][1], js[20][2] + 1, js[20][3]))
    shuffled.sort(key=lambda m: m[2])
    contract = load_contract(contract_file(tmp_path))
    ref = [f["observation.state"] for f in iter_episode(write_bag(tmp_path / "a", msgs), contract)[1]]
    report, frames = iter_episode(write_bag(tmp_path / "b", shuffled), contract)
    got = [f["observation.state"] for f in frames]
    assert report.duplicates == {"observation.state": 1}
    np.testing.assert_array_equal(np.stack(got), np.stack(ref))


def test_sim_time_stamps_and_headerless_topic(tmp_path: Path) -> None:
    """use_sim_time bag: header stamps in sim time, log times wall clock; action is Float64MultiArray."""
    wall, msgs = 1_700_000_000_000_000_000, []
    for i in range(30):
        sim = 5_000_000_000 + i * 33_333_333
        pos = np.full(6, float(i))
        msgs.append(("joint_states", "sensor_msgs/msg/JointState", wall + sim + 1_000_000, joint_state(sim, pos)))
        msgs.append(("cmd", "std_msgs/msg/Float64MultiArray", wall + sim + 1_000_000, float_array(pos * 2)))
    d = {
        "fps": 30,
        "robot_type": "r",
        "task": "t",
        "observations": [
            {
                "key": "observation.state",
                "topic": "joint_states",
                "type": "sensor_msgs/msg/JointState",
                "names": JOINTS,
            }
        ],
        "action": {
            "key": "action",
            "topic": "cmd",
            "type": "std_msgs/msg/Float64MultiArray",
            "names": JOINTS,
        },
    }
    report, frames = iter_episode(write_bag(tmp_path / "sim", sorted(msgs, key=lambda m: m[2])), contract_from_dict(d))
    frames = list(frames)
    assert report.dropped == 0 and len(frames) >= 28
    for f in frames:
        np.testing.assert_allclose(f["action"], f["observation.state"] * 2)


def test_clock_jump_back_is_an_error(tmp_path: Path) -> None:
    msgs, _ = arm_episode(seconds=0.5)
    t0 = 1_700_000_000_000_000_000
    msgs.append(
        (
            "joint_states",
            "sensor_msgs/msg/JointState",
            t0 + 2_000_000_000,
            joint_state(t0 - 5_000_000_000, [0] * 6),
        )
    )
    with pytest.raises(BagError, match=r"joint_states jumps back by 5.* --time-source log"):
        iter_episode(write_bag(tmp_path / "jump", msgs), load_contract(contract_file(tmp_path)))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda m: [x for x in m if x[0] != "leader/joint_states"],
            "no topic '/leader/joint_states' .feature action",
        ),
        (
            lambda m: (
                [x for x in m if x[0] != "joint_states"]
                + [("joint_states", "std_msgs/msg/Float64MultiArray", 1, float_array([0.0]))]
            ),
            "is std_msgs/msg/Float64",
        ),
        (
            lambda m: [
                x if x[0] != "joint_states" else (x[0], x[1], x[2], joint_state(x[2], [0] * 5, JOINTS[:5])) for x in m
            ],
            r"joint_states.*\['gripper'\] are not in",
        ),
        (
            lambda m: [
                x
                if not x[0].startswith("cameras")
                else (x[0], x[1], x[2], image(x[2], np.zeros((10, 10, 3), np.uint8)))
                for x in m
            ],
            r"cameras/top/image_raw.*\[10, 10, 3\]",
        ),
    ],
)
def test_bad_input_names_topic(tmp_path: Path, edit, match: str) -> None:
    msgs, _ = arm_episode(seconds=0.3)
    bag = write_bag(tmp_path / "bad", edit(msgs))
    contract = load_contract(contract_file(tmp_path))
    w = _writer(tmp_path / "ds", contract)
    with pytest.raises(BagError, match=match):
        convert_bag(bag, contract, w)
    assert w.num_episodes == 0


def test_empty_and_missing_bags(tmp_path: Path) -> None:
    contract = load_contract(contract_file(tmp_path))
    with pytest.raises(BagError, match="does not exist"):
        iter_episode(tmp_path / "nope", contract)
    (tmp_path / "notabag").mkdir()
    with pytest.raises(BagError, match=r"no metadata\.yaml"):
        iter_episode(tmp_path / "notabag", contract)
    write_bag(tmp_path / "empty", [])
    with pytest.raises(BagError, match="no topic"):
        iter_episode(tmp_path / "empty", contract)


def _wx_contract(tmp_path: Path) -> Path:
    names = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"]
    text = f"""
fps: 30
robot_type: wx250s
task: wave
observations:
  - {{key: observation.state, topic: /robot/joint_states, type: sensor_msgs/msg/JointState, names: {names}}}
  - {{key: observation.images.wrist, topic: /wrist_cam/image_raw/compressed,
     type: sensor_msgs/msg/CompressedImage, shape: [120, 160, 3]}}
action: {{key: action, topic: /robot/joint_states, type: sensor_msgs/msg/JointState, names: {names}}}
"""
    return contract_file(tmp_path, text)


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/data/bags not present")
def test_real_rosbags_bags_mcap_and_sqlite3_agree(tmp_path: Path) -> None:
    from apprentice.bag.reader import BagReader

    contract = load_contract(_wx_contract(tmp_path))
    results = {}
    for name in ("wx_mcap", "wx_sqlite3"):
        report, frames = iter_episode(REAL / name, contract)
        frames = list(frames)
        assert report.dropped == 0 and len(frames) == report.ticks > 80 and not report.truncated
        results[name] = frames
    for a, b in zip(results["wx_mcap"], results["wx_sqlite3"]):
        np.testing.assert_array_equal(a["observation.state"], b["observation.state"])
        np.testing.assert_array_equal(a["observation.images.wrist"], b["observation.images.wrist"])
    # the bag lists joints reversed: the first tick's state equals the first message's positions reversed
    reader = BagReader(REAL / "wx_mcap")
    first = next(reader.messages(["/robot/joint_states"]))
    msg = reader.deserializer(first.topic)(first.data)
    assert next(iter(msg.name)) == "gripper"
    np.testing.assert_allclose(results["wx_mcap"][0]["observation.state"], np.asarray(msg.position)[::-1], rtol=1e-6)
    assert results["wx_mcap"][0]["observation.images.wrist"].shape == (120, 160, 3)


def test_namespaced_bag_topics_resolve(tmp_path: Path) -> None:
    """A robot recorded under /robot1: relative contract topics find /robot1/<topic>; ambiguity is an error."""
    msgs, _ = arm_episode(seconds=0.3)
    ns = [("/robot1/" + m[0], *m[1:]) for m in msgs]
    report, frames = iter_episode(write_bag(tmp_path / "ns", ns), load_contract(contract_file(tmp_path)))
    assert report.frames == len(list(frames)) > 5
    both = ns + [("/robot2/" + m[0], *m[1:]) for m in msgs]
    with pytest.raises(BagError, match=r"several namespaces \['/robot1', '/robot2'\]"):
        iter_episode(write_bag(tmp_path / "two", both), load_contract(contract_file(tmp_path)))
