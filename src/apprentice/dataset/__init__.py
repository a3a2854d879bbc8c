"""LeRobotDataset v3.0: writer, reader, stats, video, verification, repair, Hub push/pull.

    from apprentice.dataset import DatasetWriter, LeRobotDataset, DatasetError
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apprentice.dataset.format import CODEBASE_VERSION, DatasetError
from apprentice.dataset.writer import DatasetWriter

if TYPE_CHECKING:
    from apprentice.dataset.hub import StreamingLeRobotDataset
    from apprentice.dataset.reader import LeRobotDataset

__all__ = ["CODEBASE_VERSION", "DatasetError", "DatasetWriter", "LeRobotDataset", "StreamingLeRobotDataset"]


def __getattr__(name: str) -> Any:
    # The readers need torch; a recorder that only writes should not pay its import time.
    if name == "LeRobotDataset":
        from apprentice.dataset.reader import LeRobotDataset

        return LeRobotDataset
    if name == "StreamingLeRobotDataset":
        from apprentice.dataset.hub import StreamingLeRobotDataset

        return StreamingLeRobotDataset
    raise AttributeError(f"module 'apprentice.dataset' has no attribute {name!r}")
