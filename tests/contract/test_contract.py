"""Contract loading/validation and duck-typed decoding of bag-style and rclpy messages."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
import yaml

from apprentice.contract import ContractError, contract_from_dict, load_contract

ROOT = Path(__file__).resolve().parents[2]
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def _base() -> dict:
    return {
        "fps": 30,
        "robot_type": "so101_follower",
        "task": "t",
        "observations": [
            {
                "key": "observation.state",
                "topic": "joint_states",
                "type": "sensor_msgs/JointState",
                "names": JOINTS,
                "units": "degrees",
            },
            {
                "key": "observation.images.top",
                "topic": "cam",
                "type": "sensor_msgs/msg/Image",
                "shape": [2, 3, 3],
            },
        ],
        "action": {
            "key": "action",
            "topic": "cmd",
            "type": "std_msgs/msg/Float64MultiArray",
            "names": JOINTS,
        },
    }


def _stamp(sec: int, nanosec: int) -> NS:
    return NS(header=NS(stamp=NS(sec=sec, nanosec=nanosec), frame_id=""))


@pytest.mark.parametrize("name", ["sim_reach.yaml", "sim_reach_dagger.yaml", "so101_two_cameras.yaml"])
def test_shipped_contracts_load(name: str) -> None:
    c = load_contract(ROOT / "config" / "contracts" / name)
    assert c.fps == 30
    assert c.action.key == "action" and c.features["action"]["shape"] == [6]
    assert all(k in c.features for k in ("observation.state", "action"))


def test_features_and_joint_order_by_name() -> None:
    c = contract_from_dict(_base())
    assert c.features["observation.state"] == {"dtype": "float32", "shape": [6], "names": JOINTS}
    assert c.features["observation.images.top"]["dtype"] == "video"
    assert c.spec("observation.state").msg_type == "sensor_msgs/msg/JointState"
    # message joints in reversed order with an extra joint: dataset order follows the contract's names
    names = ["extra", *reversed(JOINTS)]
    positions = [9.0, *reversed([0.1 * i for i in range(6)])]
    msg = NS(**vars(_stamp(1, 5)), name=names, position=positions, velocity=[], effort=[])
    state = c.spec("observation.state").decode(msg)
    assert state.dtype == np.float32
    np.testing.assert_allclose(state, np.degrees([0.1 * i for i in range(6)]), rtol=1e-6)
    assert c.spec("observation.state").stamp_ns(msg) == 1_000_000_005


def test_encode_is_inverse_of_decode() -> None:
    spec = contract_from_dict(_base()).spec("observation.state")
    values = np.array([10.0, -20.0, 30.0, 45.0, 90.0, 0.0])
    out = spec.encode_values(values)
    assert out["names"] == JOINTS
    np.testing.assert_allclose(out["positions"], np.radians(values))
    msg = NS(name=JOINTS, position=list(out["positions"]), header=NS(stamp=NS(sec=0, nanosec=0)))
    np.testing.assert_allclose(spec.decode(msg), values, rtol=1e-6)
    assert spec.stamp_ns(msg) is None  # a zero stamp means "not stamped"


def test_missing_joint_names_the_topic_and_joint() -> None:
    spec = contract_from_dict(_base()).spec("observation.state")
    msg = NS(name=JOINTS[:5], position=[0.0] * 5)
    with pytest.raises(ContractError, match=r"joint_states.*\['gripper'\]"):
        spec.decode(msg)


def test_geometry_and_trajectory_types() -> None:
    d = _base()
    d["observations"] += [
        {
            "key": "observation.environment_state",
            "topic": "sim/target",
            "type": "geometry_msgs/msg/PointStamped",
            "names": ["tx", "ty", "tz"],
            "paths": ["x", "y", "z"],
        },
        {
            "key": "observation.base",
            "topic": "cmd_vel",
            "type": "geometry_msgs/msg/TwistStamped",
            "names": ["linear.x", "angular.z"],
        },
        {"key": "observation.pose", "topic": "pose", "type": "geometry_msgs/msg/Pose"},
    ]
    d["action"] = {
        "key": "action",
        "topic": "traj",
        "type": "trajectory_msgs/msg/JointTrajectory",
        "names": ["b", "a"],
    }
    c = contract_from_dict(d)
    point = NS(point=NS(x=1.0, y=2.0, z=3.0))
    np.testing.assert_allclose(c.spec("observation.environment_state").decode(point), [1, 2, 3])
    twist = NS(twist=NS(linear=NS(x=0.5, y=0, z=0), angular=NS(x=0, y=0, z=-0.25)))
    np.testing.assert_allclose(c.spec("observation.base").decode(twist), [0.5, -0.25])
    pose = NS(position=NS(x=1, y=2, z=3), orientation=NS(x=0, y=0, z=0, w=1))
    assert c.spec("observation.pose").shape == [7]
    np.testing.assert_allclose(c.spec("observation.pose").decode(pose), [1, 2, 3, 0, 0, 0, 1])
    traj = NS(joint_names=["a", "b"], points=[NS(positions=[1.0, 2.0])])
    np.testing.assert_allclose(c.action.decode(traj), [2.0, 1.0])
    with pytest.raises(ContractError, match="no points"):
        c.action.decode(NS(joint_names=["a", "b"], points=[]))


def test_image_decode_checks_shape() -> None:
    spec = contract_from_dict(_base()).spec("observation.images.top")
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    msg = NS(encoding="bgr8", height=2, width=3, step=9, data=rgb[:, :, ::-1].tobytes(), is_bigendian=0)
    np.testing.assert_array_equal(spec.decode(msg), rgb)
    wrong = NS(encoding="rgb8", height=3, width=2, step=6, data=bytes(18), is_bigendian=0)
    with pytest.raises(ContractError, match=r"cam.*\[3, 2, 3\].*\[2, 3, 3\]"):
        spec.decode(wrong)


def test_float_array_too_short() -> None:
    spec = contract_from_dict(_base()).action
    with pytest.raises(ContractError, match=r"cmd.*3 values"):
        spec.decode(NS(data=[1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.pop("fps"), "missing top-level field 'fps'"),
        (lambda d: d.update(fps=0), "fps must be a positive integer"),
        (lambda d: d.update(bogus=1), r"unknown top-level fields \['bogus'\]"),
        (lambda d: d["observations"][0].update(type="sensor_msgs/msg/Imu"), "unsupported type"),
        (lambda d: d["observations"][0].update(field="torque"), "field 'torque'"),
        (lambda d: d["observations"][0].update(names=["a", "a"]), "duplicates"),
        (lambda d: d["observations"][0].update(units="furlongs"), "units 'furlongs'"),
        (lambda d: d["observations"][0].pop("topic"), r"observations\[0\] is missing 'topic'"),
        (lambda d: d["observations"][1].update(shape=[2, 3]), r"\[height, width, 3\]"),
        (lambda d: d["observations"][1].update(key="observation.top"), "observation.images"),
        (lambda d: d["action"].update(key="act"), "keyed 'action'"),
        (lambda d: d["action"].update(scale=[1.0]), "'scale' has 1 entries"),
        (lambda d: d.update(command={"type": "std_msgs/msg/String"}), "command type"),
        (lambda d: d.update(complementary_info={"key": "x"}), "'complementary_info' must be a list"),
        (
            lambda d: d.update(complementary_info=[{"key": "info.flag", "topic": "f", "type": "std_msgs/Bool",
                                                    "names": ["flag"]}]),
            "complementary_info key 'info.flag'",
        ),
        (
            lambda d: d.update(complementary_info=[{"key": "complementary_info.flag", "topic": "f",
                                                    "type": "std_msgs/msg/Bool", "names": ["a", "b"]}]),
            r"feature .complementary_info.flag.*exactly one name",
        ),
    ],
)
def test_validation_errors_are_precise(mutate, match: str, tmp_path: Path) -> None:
    d = _base()
    mutate(d)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ContractError, match=match) as info:
        load_contract(path)
    assert str(path) in str(info.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("fps: [1,\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract(bad)


def test_scale_offset_units() -> None:
    d = _base()
    d["action"]["scale"] = [2.0] * 6
    d["action"]["offset"] = [1.0] * 6
    spec = contract_from_dict(d).action
    np.testing.assert_allclose(spec.decode(NS(data=[0.5] * 6)), [2.0] * 6)
    np.testing.assert_allclose(spec.encode_values(np.full(6, 2.0))["positions"], [0.5] * 6)
    assert math.isclose(float(contract_from_dict(_base()).spec("observation.state").gain[0]), 180 / math.pi)


@pytest.mark.ros
def test_decode_real_rclpy_messages() -> None:
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray

    c = contract_from_dict(_base())
    js = JointState(name=list(reversed(JOINTS)), position=[float(i) for i in range(6)])
    js.header.stamp.sec, js.header.stamp.nanosec = 3, 7
    np.testing.assert_allclose(c.spec("observation.state").decode(js), np.degrees([5, 4, 3, 2, 1, 0]), rtol=1e-6)
    assert c.spec("observation.state").stamp_ns(js) == 3_000_000_007
    np.testing.assert_allclose(c.action.decode(Float64MultiArray(data=[1.0] * 6)), [1.0] * 6)
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    img = Image(height=2, width=3, encoding="rgb8", step=9, data=rgb.tobytes())
    np.testing.assert_array_equal(c.spec("observation.images.top").decode(img), rgb)


def test_a_shipped_contract_loads_by_name(tmp_path) -> None:
    by_name = load_contract("sim_reach")
    assert by_name.source.endswith("config/contracts/sim_reach.yaml")
    assert [s.key for s in by_name.specs] == [s.key for s in load_contract(by_name.source).specs]
    with pytest.raises(ContractError, match=r"no_such_setup\.yaml does not exist"):
        load_contract("no_such_setup")
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "missing")  # a path is never looked up among the shipped ones


def test_complementary_info_bool_flag_is_lerobots_float32_feature() -> None:
    """lerobot's HIL-SERL recordings store complementary_info.is_intervention as float32 (1,)."""
    d = _base()
    d["complementary_info"] = [
        {"key": "complementary_info.is_intervention", "topic": "intervention", "type": "std_msgs/Bool",
         "names": ["is_intervention"]}
    ]
    c = contract_from_dict(d)
    spec = c.spec("complementary_info.is_intervention")
    assert c.features[spec.key] == {"dtype": "float32", "shape": [1], "names": ["is_intervention"]}
    assert spec.required is False  # episodes recorded without its publisher still convert (with 0.0)
    assert "intervention" in c.topics and spec in c.specs
    assert spec.decode(NS(data=True)).tolist() == [1.0] and spec.decode(NS(data=False)).tolist() == [0.0]
    assert spec.decode(NS(data=True)).dtype == np.float32
    assert spec.stamp_ns(NS(data=True)) is None  # headerless: receive time


def test_single_camera_key_of_lerobot_pusht_is_an_image() -> None:
    d = _base()
    d["observations"][1]["key"] = "observation.image"  # lerobot/pusht's one camera
    c = contract_from_dict(d)
    assert c.features["observation.image"]["dtype"] == "video" and c.spec("observation.image").is_image
    d["observations"][1]["key"] = "observation.camera"
    with pytest.raises(ContractError, match=r"observation\.images\.<camera>' \(or 'observation\.image'\)"):
        contract_from_dict(d)
