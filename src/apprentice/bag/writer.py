"""rosbag2-compatible MCAP writer: `<dir>/<name>_0.mcap` (ros2 profile, ros2msg schemas, CDR) + metadata.yaml.

Crash safety: messages go into MCAP chunks; every finished chunk is handed to the OS at once (flush), so
a SIGKILL loses at most the open chunk (bounded by `chunk_size` bytes and `chunk_interval_s`).
metadata.yaml is written only by `close()`: a bag directory without it is an interrupted recording
(see `apprentice.bag.salvage`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml
from mcap.writer import CompressionType, Writer

from apprentice import __version__
from apprentice.bag.errors import BagError
from apprentice.bag.msgdefs import message_definition

_INFINITE = {"sec": 9223372036, "nsec": 854775807}


def offered_qos(reliability: str = "reliable", depth: int = 10) -> list[dict]:
    """One offered QoS profile in rosbag2's metadata version-9 layout (named policies)."""
    if reliability not in ("reliable", "best_effort"):
        raise BagError(f"reliability must be 'reliable' or 'best_effort', got '{reliability}'")
    return [
        {
            "history": "keep_last",
            "depth": depth,
            "reliability": reliability,
            "durability": "volatile",
            "deadline": dict(_INFINITE),
            "lifespan": dict(_INFINITE),
            "liveliness": "automatic",
            "liveliness_lease_duration": dict(_INFINITE),
            "avoid_ros_namespace_conventions": False,
        }
    ]


@dataclass
class _Topic:
    name: str
    msg_type: str
    channel_id: int
    rihs: str
    qos: list[dict]
    count: int = 0


def ros_topic(name: str) -> str:
    """Fully qualified topic name as rosbag2 stores it ('joint_states' -> '/joint_states')."""
    return name if name.startswith("/") else "/" + name


class BagWriter:
    """Write one rosbag2 MCAP bag directory; use as a context manager or call close()."""

    def __init__(
        self,
        path: str | Path,
        compression: str = "none",
        chunk_size: int = 1 << 20,
        chunk_interval_s: float = 0.5,
        custom_data: dict[str, str] | None = None,
        file_name: str | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"bag directory {self.path} already exists; choose another name or remove it")
        self.path.mkdir(parents=True)
        self.file_name = file_name or f"{self.path.name}_0.mcap"
        self._file: IO[bytes] = open(self.path / self.file_name, "wb")  # noqa: SIM115 - closed in close()
        kinds = {"none": CompressionType.NONE, "zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4}
        if compression not in kinds:
            raise BagError(f"unknown compression '{compression}'; use one of {sorted(kinds)}")
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=kinds[compression])
        self._writer.start(profile="ros2", library=f"apprentice {__version__}")
        self._topics: dict[str, _Topic] = {}
        self._schemas: dict[str, int] = {}
        self._chunk_interval_ns = int(chunk_interval_s * 1e9)
        self._last_flush_ns = time.monotonic_ns()
        self._start_ns: int | None = None
        self._end_ns = 0
        self.custom_data = dict(custom_data or {})
        self.closed = False

    def add_topic(self, topic: str, msg_type: str, reliability: str = "reliable") -> None:
        """Declare a topic before writing to it (idempotent); `reliability` is what its publishers offered."""
        topic = ros_topic(topic)
        if topic in self._topics:
            return
        text, rihs = message_definition(msg_type)
        schema_id = self._schemas.get(msg_type)
        if schema_id is None:
            schema_id = self._writer.register_schema(name=msg_type, encoding="ros2msg", data=text.encode())
            self._schemas[msg_type] = schema_id
        qos = offered_qos(reliability)
        # The MCAP ros2 profile stores the profiles as a YAML string in the channel metadata.
        metadata = {"offered_qos_profiles": yaml.safe_dump(qos, sort_keys=False)}
        channel_id = self._writer.register_channel(
            topic=topic, message_encoding="cdr", schema_id=schema_id, metadata=metadata
        )
        self._topics[topic] = _Topic(topic, msg_type, channel_id, rihs, qos)

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """Append one CDR-serialized message received at `log_time_ns`."""
        t = self._topics.get(ros_topic(topic))
        if t is None:
            raise BagError(f"{self.path}: topic '{topic}' was not declared with add_topic()")
        self._writer.add_message(
            channel_id=t.channel_id,
            log_time=log_time_ns,
            publish_time=publish_time_ns if publish_time_ns is not None else log_time_ns,
            data=data,
            sequence=t.count,
        )
        t.count += 1
        self._start_ns = log_time_ns if self._start_ns is None else min(self._start_ns, log_time_ns)
        self._end_ns = max(self._end_ns, log_time_ns)
        now = time.monotonic_ns()
        if now - self._last_flush_ns > self._chunk_interval_ns:
            self.flush()

    def flush(self) -> None:
        """Close the open chunk and hand everything written so far to the OS."""
        # mcap's Writer only closes a chunk when it is full; its (name-mangled) chunk finalizer is the one
        # way to bound the unflushed tail by time as well. No-op on an empty chunk.
        finalize = getattr(self._writer, "_Writer__finalize_chunk", None)
        if finalize is not None:
            finalize()
        self._file.flush()
        self._last_flush_ns = time.monotonic_ns()

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self._topics.values())

    def topic_count(self, topic: str) -> int:
        t = self._topics.get(ros_topic(topic))
        return t.count if t else 0

    def close(self) -> Path:
        """Finish the MCAP (summary, footer), write metadata.yaml; returns the bag directory."""
        if self.closed:
            return self.path
        self._writer.finish()
        self._file.close()
        write_metadata(
            self.path,
            [self.file_name],
            list(self._topics.values()),
            self._start_ns or 0,
            self._end_ns,
            self.custom_data,
        )
        self.closed = True
        return self.path

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_metadata(
    bag_dir: Path,
    files: list[str],
    topics: list,
    start_ns: int,
    end_ns: int,
    custom_data: dict[str, str] | None = None,
) -> None:
    """metadata.yaml in rosbag2's version-9 layout (what `ros2 bag info` and rosbag2 readers expect)."""
    duration = max(0, end_ns - start_ns)
    count = sum(t.count for t in topics)
    info = {
        "version": 9,
        "storage_identifier": "mcap",
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start_ns},
        "message_count": count,
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.msg_type,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": t.qos,
                    "type_description_hash": t.rihs,
                },
                "message_count": t.count,
            }
            for t in topics
        ],
        # rosbag2 names chunk compression here only for its own (file/message) modes; MCAP chunks are
        # self-describing, so this stays empty as rosbag2's mcap plugin leaves it.
        "compression_format": "",
        "compression_mode": "",
        "relative_file_paths": list(files),
        "files": [
            {
                "path": f,
                "starting_time": {"nanoseconds_since_epoch": start_ns},
                "duration": {"nanoseconds": duration},
                "message_count": count,
            }
            for f in files
        ],
        "custom_data": dict(custom_data or {}),
        "ros_distro": "kilted",
    }
    tmp = bag_dir / "metadata.yaml.tmp"
    tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
    tmp.replace(bag_dir / "metadata.yaml")
