"""Salvage a bag whose recorder died: keep every message up to the last complete chunk.

A recorder killed mid-episode leaves `<bag>/` with an MCAP that has no summary/footer and no
metadata.yaml. `salvage` rewrites the readable messages into a complete bag of the same name (so
`ros2 bag info`/`play` and `apprentice convert` accept it, marked `apprentice.salvaged: "true"` in
metadata custom_data) and keeps the original file as `<bag>.interrupted/` until the user deletes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from apprentice.bag.errors import BagError
from apprentice.bag.reader import BagReader
from apprentice.bag.writer import BagWriter


def is_complete(bag_dir: Path) -> bool:
    """A bag our writer closed has metadata.yaml (written last, atomically)."""
    return (Path(bag_dir) / "metadata.yaml").is_file()


def salvage(bag_dir: str | Path) -> tuple[Path | None, int]:
    """Make an interrupted bag readable; returns (bag dir, or None if nothing was readable; messages kept)."""
    bag_dir = Path(bag_dir)
    if is_complete(bag_dir):
        raise BagError(f"{bag_dir} is a complete bag (it has metadata.yaml); nothing to salvage")
    try:
        reader = BagReader(bag_dir)
    except BagError:
        reader = None
    kept = bag_dir.with_name(bag_dir.name + ".interrupted")
    if kept.exists():
        raise BagError(f"{kept} exists from an earlier salvage; move it away and retry")
    tmp = bag_dir.with_name(bag_dir.name + ".salvaging")
    shutil.rmtree(tmp, ignore_errors=True)
    count = 0
    if reader is not None and reader.topics:
        writer = BagWriter(tmp, file_name=f"{bag_dir.name}_0.mcap", custom_data={"apprentice.salvaged": "true"})
        for topic, msg_type in reader.topics.items():
            writer.add_topic(topic, msg_type)
        for m in reader.messages():
            writer.write(m.topic, bytes(m.data), m.log_time_ns)
            count += 1
        writer.close()
    bag_dir.rename(kept)
    if count == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return None, 0
    tmp.rename(bag_dir)
    return bag_dir, count
