"""ros2msg definitions (the text rosbag2 stores as MCAP schema / sqlite3 message_definitions).

Standard types come from rosbags' bundled typestore; other types (e.g. apprentice/msg/EpisodeStatus) are
read from `share/<pkg>/msg/<Name>.msg` of the ament prefixes, as rosbag2 itself does.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from apprentice.bag.errors import BagError


@functools.cache
def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _find_msg_file(msg_type: str) -> Path | None:
    pkg, kind, name = msg_type.split("/")
    prefixes = os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
    for prefix in filter(None, prefixes):
        candidate = Path(prefix) / "share" / pkg / kind / f"{name}.msg"
        if candidate.is_file():
            return candidate
    return None


def _register(msg_type: str) -> None:
    """Register a non-standard `msg_type` from its .msg file (its field types must be standard)."""
    from rosbags.typesys import get_types_from_msg

    store = _typestore()
    if msg_type in store.fielddefs:
        return
    path = _find_msg_file(msg_type)
    if path is None:
        raise BagError(
            f"no message definition for '{msg_type}': not a standard type and no share/.../{msg_type}.msg "
            "under AMENT_PREFIX_PATH; source the workspace that defines it"
        )
    store.register(get_types_from_msg(path.read_text(), msg_type))


@functools.cache
def message_definition(msg_type: str) -> tuple[str, str]:
    """(concatenated ros2msg definition text, RIHS01 type hash) for 'pkg/msg/Name'."""
    _register(msg_type)
    store = _typestore()
    try:
        text, _ = store.generate_msgdef(msg_type, ros_version=2)
    except KeyError as exc:
        raise BagError(f"message definition of '{msg_type}' uses unknown type {exc}") from exc
    try:
        rihs = store.hash_rihs01(msg_type)
    except (KeyError, ValueError):
        rihs = ""
    return text, rihs
