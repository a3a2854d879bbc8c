"""Build real CDR messages (rosbags' serializer, no ROS needed) and real MCAP bags for the bag tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

from apprentice.bag.writer import BagWriter
from apprentice.cameras.image import array_to_image_fields, rgb_to_compressed

TS = get_typestore(Stores.ROS2_KILTED)
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
Msg = tuple[str, str, int, bytes]  # topic, type, log time ns, CDR bytes


def _header(stamp_ns: int):
    T = TS.types["builtin_interfaces/msg/Time"]
    H = TS.types["std_msgs/msg/Header"]
    return H(stamp=T(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id="f")


def cdr(msg_type: str, msg: object) -> bytes:
    return bytes(TS.serialize_cdr(msg, msg_type))


def joint_state(stamp_ns: int, positions, names=JOINTS) -> bytes:
    t = "sensor_msgs/msg/JointState"
    empty = np.zeros(0, np.float64)
    return cdr(
        t,
        TS.types[t](
            header=_header(stamp_ns),
            name=list(names),
            position=np.ascontiguousarray(positions, np.float64),
            velocity=empty,
            effort=empty,
        ),
    )


def image(stamp_ns: int, rgb: np.ndarray, encoding: str = "rgb8") -> bytes:
    t = "sensor_msgs/msg/Image"
    arr = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    f = array_to_image_fields(arr, encoding)
    return cdr(
        t,
        TS.types[t](
            header=_header(stamp_ns),
            height=f["height"],
            width=f["width"],
            encoding=encoding,
            is_bigendian=0,
            step=f["step"],
            data=np.frombuffer(f["data"], np.uint8),
        ),
    )


def compressed(stamp_ns: int, rgb: np.ndarray) -> bytes:
    t = "sensor_msgs/msg/CompressedImage"
    fmt, data = rgb_to_compressed(rgb, "png")
    return cdr(t, TS.types[t](header=_header(stamp_ns), format=fmt, data=np.frombuffer(data, np.uint8)))


def point(stamp_ns: int, xyz) -> bytes:
    t = "geometry_msgs/msg/PointStamped"
    P = TS.types["geometry_msgs/msg/Point"]
    return cdr(t, TS.types[t](header=_header(stamp_ns), point=P(x=xyz[0], y=xyz[1], z=xyz[2])))


def float_array(values) -> bytes:
    t = "std_msgs/msg/Float64MultiArray"
    L = TS.types["std_msgs/msg/MultiArrayLayout"]
    return cdr(t, TS.types[t](layout=L(dim=[], data_offset=0), data=np.asarray(values, np.float64)))


def frame_image(i: int, h: int = 24, w: int = 32) -> np.ndarray:
    """A frame whose content encodes its index (mean brightness grows with i)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = (i * 7) % 256
    img[:, :, 1] = np.arange(w, dtype=np.uint8)[None, :] * 4
    img[:, :, 2] = 200
    return img


def write_bag(path: Path, messages: list[Msg]) -> Path:
    with BagWriter(path) as w:
        for topic, msg_type, _, _ in messages:
            w.add_topic(topic, msg_type)
        for topic, _, log_ns, data in messages:
            w.write(topic, data, log_ns)
    return path


def arm_episode(
    seconds: float = 1.0,
    t0: int = 1_700_000_000_000_000_000,
    cam_hz: float = 30,
    js_hz: float = 100,
    jitter_ms: float = 2.0,
    seed: int = 0,
) -> tuple[list[Msg], dict]:
    """A follower arm (joint_states), a leader (leader/joint_states) and a top camera, stamps jittered."""
    rng = np.random.default_rng(seed)
    msgs: list[Msg] = []
    truth: dict[str, list] = {"js": [], "cam": []}
    for i in range(int(seconds * js_hz)):
        stamp = t0 + int(i * 1e9 / js_hz + rng.uniform(-jitter_ms, jitter_ms) * 1e6)
        pos = np.sin(np.arange(6) + i * 0.05)
        truth["js"].append((stamp, pos))
        msgs.append(("joint_states", "sensor_msgs/msg/JointState", stamp + 500_000, joint_state(stamp, pos)))
        msgs.append(
            (
                "leader/joint_states",
                "sensor_msgs/msg/JointState",
                stamp + 600_000,
                joint_state(stamp, (pos + 1.0)[::-1], names=list(reversed(JOINTS))),
            )
        )
    for i in range(int(seconds * cam_hz)):
        stamp = t0 + int(i * 1e9 / cam_hz + rng.uniform(-jitter_ms, jitter_ms) * 1e6)
        truth["cam"].append((stamp, i))
        msgs.append(
            (
                "cameras/top/image_raw",
                "sensor_msgs/msg/Image",
                stamp + 3_000_000,
                image(stamp, frame_image(i)),
            )
        )
    msgs.sort(key=lambda m: m[2])
    return msgs, truth


CONTRACT = f"""
fps: 30
robot_type: test_arm
task: test task
max_drop_ratio: 0.2
observations:
  - {{key: observation.state, topic: joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS},
     max_age_s: 0.05}}
  - {{key: observation.images.top, topic: cameras/top/image_raw, type: sensor_msgs/msg/Image,
     shape: [24, 32, 3],
     max_age_s: 0.1}}
action: {{key: action, topic: leader/joint_states, type: sensor_msgs/msg/JointState, names: {JOINTS},
         max_age_s: 0.05}}
"""


def contract_file(tmp: Path, text: str = CONTRACT) -> Path:
    path = tmp / "contract.yaml"
    path.write_text(text)
    return path
