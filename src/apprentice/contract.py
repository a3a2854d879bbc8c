"""The contract: one YAML file mapping dataset features to ROS 2 topics, used in both directions.

The recorder/converter reads topics into dataset features (`FeatureSpec.decode`); the policy node reads
the same observations and turns action vectors back into commands (`FeatureSpec.encode_values`), so
recording and deployment cannot drift apart. Decoding is duck-typed on message field names, so rclpy
messages and messages deserialized from bags (mcap_ros2, rosbags) go through the same code.
File format: README, "Recording"; working files: config/contracts/.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from apprentice.cameras.image import ImageError, compressed_to_rgb, image_to_rgb


class ContractError(ValueError):
    """A contract file is invalid, or a message does not match what the contract says."""


JOINT_STATE = "sensor_msgs/msg/JointState"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
FLOAT32_ARRAY = "std_msgs/msg/Float32MultiArray"
TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
BOOL = "std_msgs/msg/Bool"  # one flag (e.g. complementary_info.is_intervention): False/True -> 0.0/1.0
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
_TWIST = ["linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z"]
_POSE = [f"position.{a}" for a in "xyz"] + [f"orientation.{a}" for a in "xyzw"]
# type -> (attribute holding the values inside the message, default names); names are attribute paths.
_STRUCT_TYPES: dict[str, tuple[str, list[str]]] = {
    "geometry_msgs/msg/Twist": ("", _TWIST),
    "geometry_msgs/msg/TwistStamped": ("twist", _TWIST),
    "geometry_msgs/msg/Pose": ("", _POSE),
    "geometry_msgs/msg/PoseStamped": ("pose", _POSE),
    "geometry_msgs/msg/Point": ("", ["x", "y", "z"]),
    "geometry_msgs/msg/PointStamped": ("point", ["x", "y", "z"]),
    # Wheel odometry (a mobile base's measured velocity or pose): names are paths such as twist.linear.x
    "nav_msgs/msg/Odometry": ("", [f"twist.twist.{p}" for p in _TWIST]),
}
# Which message field a numeric feature reads, per type: allowed values, default first.
_FIELDS: dict[str, tuple[str, ...]] = {
    JOINT_STATE: ("position", "velocity", "effort"),
    TRAJECTORY: ("positions", "velocities", "accelerations", "effort"),
    FLOAT64_ARRAY: ("data",),
    FLOAT32_ARRAY: ("data",),
}
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
SUPPORTED_TYPES = (*_FIELDS, BOOL, *IMAGE_TYPES, *_STRUCT_TYPES)
COMMAND_TYPES = (FLOAT64_ARRAY, TRAJECTORY)
_UNITS = {"radians": 1.0, "degrees": 180.0 / math.pi, "m": 1.0, "mm": 1000.0}


def normalize_type(msg_type: str) -> str:
    """'sensor_msgs/JointState' or 'sensor_msgs/msg/JointState' -> 'sensor_msgs/msg/JointState'."""
    parts = msg_type.strip().split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    return "/".join(parts)


def is_image_key(key: str) -> bool:
    """A camera feature: `observation.images.<camera>`, or the single `observation.image` of lerobot's pusht."""
    return key == "observation.image" or key.startswith("observation.images.")


@dataclass
class FeatureSpec:
    """One dataset feature and the topic it comes from."""

    key: str
    topic: str
    msg_type: str
    names: list[str] = dc_field(default_factory=list)
    dtype: str = ""
    shape: list[int] = dc_field(default_factory=list)
    required: bool = True
    max_age_s: float = 0.1
    field: str = ""
    units: str = "radians"
    scale: list[float] | None = None
    offset: list[float] | None = None
    indices: list[int] | None = None
    paths: list[str] | None = None
    source: str = "<contract>"
    _index_cache: dict[tuple[str, ...], np.ndarray] = dc_field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"{self.source}: feature '{self.key}' (topic '{self.topic}')"
        self.msg_type = normalize_type(self.msg_type)
        if self.msg_type not in SUPPORTED_TYPES:
            raise ContractError(f"{where}: unsupported type '{self.msg_type}'; use one of {SUPPORTED_TYPES}")
        if not self.topic:
            raise ContractError(f"{where}: 'topic' is empty")
        if self.max_age_s <= 0:
            raise ContractError(f"{where}: max_age_s must be > 0, got {self.max_age_s}")
        if self.is_image:
            self._init_image(where)
        else:
            self._init_numeric(where)

    def _init_image(self, where: str) -> None:
        if not is_image_key(self.key):
            raise ContractError(
                f"{where}: image features must be named 'observation.images.<camera>' (or 'observation.image')"
            )
        self.dtype = self.dtype or "video"
        if self.dtype not in ("video", "image"):
            raise ContractError(f"{where}: image dtype must be 'video' or 'image', got '{self.dtype}'")
        if len(self.shape) != 3 or self.shape[2] != 3 or min(self.shape) <= 0:
            raise ContractError(f"{where}: image shape must be [height, width, 3], got {self.shape}")
        self.names = ["height", "width", "channels"]

    def _init_numeric(self, where: str) -> None:
        if self.msg_type == BOOL:
            self.field = self.field or "data"
            if self.field != "data" or len(self.names) != 1:
                raise ContractError(f"{where}: a std_msgs/msg/Bool feature has field 'data' and exactly one name")
        elif self.msg_type in _STRUCT_TYPES:
            # names are dataset names; paths are the message attributes they come from (default: the names)
            self.paths = list(self.paths or self.names or _STRUCT_TYPES[self.msg_type][1])
            self.names = list(self.names or self.paths)
            self.field = self.field or "value"
            if len(self.paths) != len(self.names):
                raise ContractError(f"{where}: 'paths' has {len(self.paths)} entries, 'names' {len(self.names)}")
        elif self.paths is not None:
            raise ContractError(f"{where}: 'paths' only applies to geometry_msgs types")
        else:
            allowed = _FIELDS[self.msg_type]
            self.field = self.field or allowed[0]
            if self.field not in allowed:
                raise ContractError(f"{where}: field '{self.field}' is not one of {allowed}")
        if not self.names:
            raise ContractError(f"{where}: 'names' must list the joints/fields in dataset order")
        if len(set(self.names)) != len(self.names):
            raise ContractError(f"{where}: 'names' has duplicates: {self.names}")
        n = len(self.names)
        self.dtype = self.dtype or "float32"
        if self.dtype not in ("float32", "float64"):
            raise ContractError(f"{where}: numeric dtype must be float32 or float64, got '{self.dtype}'")
        if self.shape and list(self.shape) != [n]:
            raise ContractError(f"{where}: shape {self.shape} does not match {n} names")
        self.shape = [n]
        if self.units not in _UNITS:
            raise ContractError(f"{where}: units '{self.units}' is not one of {sorted(_UNITS)}")
        for label, values in (("scale", self.scale), ("offset", self.offset), ("indices", self.indices)):
            if values is not None and len(values) != n:
                raise ContractError(f"{where}: '{label}' has {len(values)} entries, expected {n} (per name)")
        if self.indices is not None and self.msg_type not in (FLOAT64_ARRAY, FLOAT32_ARRAY):
            raise ContractError(f"{where}: 'indices' only applies to Float64MultiArray/Float32MultiArray")

    # ---- derived properties -------------------------------------------------------------------------
    @property
    def is_image(self) -> bool:
        return self.msg_type in IMAGE_TYPES

    @property
    def feature(self) -> dict[str, Any]:
        """This feature's entry in the dataset features dict."""
        return {"dtype": self.dtype, "shape": list(self.shape), "names": list(self.names)}

    @property
    def gain(self) -> np.ndarray:
        """dataset value = topic value * gain + bias (units conversion, then explicit scale)."""
        g = np.full(len(self.names), _UNITS[self.units], dtype=np.float64)
        return g * np.asarray(self.scale, dtype=np.float64) if self.scale is not None else g

    @property
    def bias(self) -> np.ndarray:
        return np.asarray(self.offset if self.offset is not None else [0.0] * len(self.names), np.float64)

    # ---- topic -> dataset ---------------------------------------------------------------------------
    def decode(self, msg: Any) -> np.ndarray:
        """Message -> dataset value: float vector in dataset units, or uint8 (H, W, 3) RGB image."""
        if self.is_image:
            return self._decode_image(msg)
        raw = self._raw_values(msg)
        return (raw * self.gain + self.bias).astype(self.dtype)

    def stamp_ns(self, msg: Any) -> int | None:
        """Header stamp in nanoseconds, or None when the type has no header or it was left at zero."""
        header = getattr(msg, "header", None)
        if header is None:
            return None
        ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        return ns or None

    def _decode_image(self, msg: Any) -> np.ndarray:
        try:
            if self.msg_type == COMPRESSED_IMAGE:
                rgb = compressed_to_rgb(msg.format, msg.data)
            else:
                rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
        except ImageError as exc:
            raise ContractError(f"topic '{self.topic}' ({self.key}): {exc}") from exc
        if list(rgb.shape) != list(self.shape):
            raise ContractError(
                f"topic '{self.topic}' ({self.key}): image is {list(rgb.shape)} but the contract says "
                f"{self.shape}; set the camera size or fix 'shape' in the contract"
            )
        return rgb

    def _raw_values(self, msg: Any) -> np.ndarray:
        if self.msg_type == BOOL:
            return np.array([1.0 if msg.data else 0.0])
        if self.msg_type == JOINT_STATE:
            return self._by_name(list(msg.name), getattr(msg, self.field), "name")
        if self.msg_type == TRAJECTORY:
            if not msg.points:
                raise ContractError(f"topic '{self.topic}' ({self.key}): JointTrajectory has no points")
            return self._by_name(list(msg.joint_names), getattr(msg.points[0], self.field), "joint_names")
        if self.msg_type in (FLOAT64_ARRAY, FLOAT32_ARRAY):
            data = np.asarray(msg.data, dtype=np.float64)
            idx = self.indices if self.indices is not None else list(range(len(self.names)))
            if data.size <= max(idx):
                where = f"topic '{self.topic}' ({self.key})"
                raise ContractError(f"{where}: data has {data.size} values, reads index {max(idx)}; fix 'names'")
            return data[idx]
        root = _STRUCT_TYPES[self.msg_type][0]
        base = getattr(msg, root) if root else msg
        try:
            values = [functools.reduce(getattr, p.split("."), base) for p in self.paths or []]
        except AttributeError as exc:
            raise ContractError(f"topic '{self.topic}' ({self.key}): {exc}; fix 'names'") from exc
        return np.asarray(values, dtype=np.float64)

    def _by_name(self, msg_names: list[str], values: Any, names_field: str) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        cache_key = tuple(msg_names)
        idx = self._index_cache.get(cache_key)
        if idx is None:
            position = {n: i for i, n in enumerate(msg_names)}
            missing = [n for n in self.names if n not in position]
            if missing:
                raise ContractError(
                    f"topic '{self.topic}' ({self.key}): joints {missing} are not in the message's "
                    f"{names_field} {msg_names}; fix 'names' in the contract"
                )
            idx = np.array([position[n] for n in self.names], dtype=np.int64)
            self._index_cache[cache_key] = idx
        if values.size < len(msg_names):
            raise ContractError(
                f"topic '{self.topic}' ({self.key}): '{self.field}' has {values.size} values for {len(msg_names)} names"
            )
        return values[idx]

    # ---- dataset -> topic ---------------------------------------------------------------------------
    def encode_values(self, values: np.ndarray) -> dict[str, Any]:
        """Dataset-unit vector -> {"names": [...], "positions": float64 array in topic units}."""
        if self.is_image:
            raise ContractError(f"feature '{self.key}' is an image; only numeric features can be commanded")
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size != len(self.names):
            raise ContractError(f"feature '{self.key}': got {v.size} values, expected {len(self.names)}")
        return {"names": list(self.names), "positions": (v - self.bias) / self.gain}


@dataclass
class Contract:
    """A whole contract file: dataset fps/robot_type/task, observation and action features, command."""

    fps: int
    robot_type: str
    task: str
    observations: list[FeatureSpec]
    action: FeatureSpec
    command_topic: str = "forward_position_controller/commands"
    command_type: str = FLOAT64_ARRAY
    # lerobot's per-frame extras (HIL-SERL: complementary_info.is_intervention, float32 (1,)); neither
    # observation nor action: policies ignore them, the recorder records them.
    complementary_info: list[FeatureSpec] = dc_field(default_factory=list)
    extra_topics: list[str] = dc_field(default_factory=list)
    max_drop_ratio: float = 0.1
    source: str = "<contract>"

    def __post_init__(self) -> None:
        where = self.source
        if not isinstance(self.fps, int) or self.fps <= 0:
            raise ContractError(f"{where}: fps must be a positive integer, got {self.fps!r}")
        if not self.observations:
            raise ContractError(f"{where}: 'observations' is empty; list at least one feature")
        keys = [s.key for s in self.specs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ContractError(f"{where}: duplicate feature keys {dup}")
        if self.action.key != "action" or self.action.is_image:
            raise ContractError(f"{where}: the action feature must be numeric and keyed 'action'")
        for s in self.observations:
            if not s.key.startswith("observation."):
                raise ContractError(f"{where}: observation key '{s.key}' must start with 'observation.'")
        for s in self.complementary_info:
            if not s.key.startswith("complementary_info.") or s.is_image:
                raise ContractError(f"{where}: complementary_info key '{s.key}' must be numeric and start with "
                                    "'complementary_info.'")
        self.command_type = normalize_type(self.command_type)
        if self.command_type not in COMMAND_TYPES:
            raise ContractError(f"{where}: command type '{self.command_type}' is not one of {COMMAND_TYPES}")
        if not 0.0 <= self.max_drop_ratio <= 1.0:
            raise ContractError(f"{where}: max_drop_ratio must be in [0, 1], got {self.max_drop_ratio}")

    @property
    def specs(self) -> list[FeatureSpec]:
        return [*self.observations, self.action, *self.complementary_info]

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """The dataset features dict, as DatasetWriter.create takes it."""
        return {s.key: s.feature for s in self.specs}

    @property
    def topics(self) -> list[str]:
        """Every topic to record: the features' topics (deduplicated, in order) and the extra topics."""
        return list(dict.fromkeys([s.topic for s in self.specs] + list(self.extra_topics)))

    @property
    def primary(self) -> FeatureSpec:
        """The feature whose message count is shown as 'frames' (first camera, else the first observation)."""
        images = [s for s in self.observations if s.is_image]
        return images[0] if images else self.observations[0]

    def spec(self, key: str) -> FeatureSpec:
        for s in self.specs:
            if s.key == key:
                return s
        keys = [s.key for s in self.specs]
        raise ContractError(f"{self.source}: no feature '{key}'; the contract has {keys}")


_SPEC_KEYS = {
    "key",
    "topic",
    "type",
    "names",
    "dtype",
    "shape",
    "required",
    "max_age_s",
    "field",
    "units",
    "scale",
    "offset",
    "indices",
    "paths",
}
_TOP_KEYS = {
    "fps",
    "robot_type",
    "task",
    "observations",
    "action",
    "command",
    "complementary_info",
    "extra_topics",
    "max_drop_ratio",
}


def _spec_from_dict(d: Any, source: str, where: str) -> FeatureSpec:
    if not isinstance(d, dict):
        raise ContractError(f"{source}: {where} must be a mapping with key/topic/type, got {d!r}")
    unknown = set(d) - _SPEC_KEYS
    if unknown:
        raise ContractError(f"{source}: {where}: unknown fields {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
    for need in ("key", "topic", "type"):
        if need not in d:
            raise ContractError(f"{source}: {where} is missing '{need}'")
    kwargs = {k: v for k, v in d.items() if k != "type"}
    kwargs["names"] = [str(n) for n in d.get("names") or []]
    kwargs["shape"] = [int(x) for x in d.get("shape") or []]
    try:
        return FeatureSpec(msg_type=str(d["type"]), source=source, **kwargs)
    except TypeError as exc:
        raise ContractError(f"{source}: {where}: {exc}") from exc


def contract_from_dict(data: Any, source: str = "<contract>") -> Contract:
    """Build and validate a Contract from parsed YAML."""
    if not isinstance(data, dict):
        raise ContractError(f"{source}: expected a mapping at the top level")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ContractError(f"{source}: unknown top-level fields {sorted(unknown)}; allowed {sorted(_TOP_KEYS)}")
    for need in ("fps", "robot_type", "observations", "action"):
        if need not in data:
            raise ContractError(f"{source}: missing top-level field '{need}'")
    obs = data["observations"]
    if not isinstance(obs, list):
        raise ContractError(f"{source}: 'observations' must be a list of features")
    observations = [_spec_from_dict(o, source, f"observations[{i}]") for i, o in enumerate(obs)]
    action = _spec_from_dict(data["action"], source, "action")
    extras = data.get("complementary_info") or []
    if not isinstance(extras, list):
        raise ContractError(f"{source}: 'complementary_info' must be a list of features")
    # Optional by default: an episode recorded without their publisher (plain teleop) still converts, with 0.
    complementary = [
        _spec_from_dict({"required": False, **c} if isinstance(c, dict) else c, source, f"complementary_info[{i}]")
        for i, c in enumerate(extras)
    ]
    command = data.get("command") or {}
    return Contract(
        fps=data["fps"],
        robot_type=str(data["robot_type"]),
        task=str(data.get("task") or ""),
        observations=observations,
        action=action,
        command_topic=str(command.get("topic", "forward_position_controller/commands")),
        command_type=str(command.get("type", FLOAT64_ARRAY)),
        complementary_info=complementary,
        extra_topics=[str(t) for t in data.get("extra_topics") or []],
        max_drop_ratio=float(data.get("max_drop_ratio", 0.1)),
        source=source,
    )


def resolve_contract(value: str | Path) -> Path:
    """A contract file path, or the name of a shipped one ('sim_reach' -> config/contracts/sim_reach.yaml)."""
    path = Path(value)
    if path.suffix in (".yaml", ".yml") or path.exists() or len(path.parts) > 1:
        return path
    from apprentice.resources import config_path

    return config_path("contracts", f"{path.name}.yaml")


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract YAML file (or a shipped one by name); errors name the file and the field."""
    path = resolve_contract(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ContractError(f"contract file {path} does not exist (examples: config/contracts/)") from exc
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    return contract_from_dict(data, source=str(path))
