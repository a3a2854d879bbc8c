"""Where a run is in its data, stored in each checkpoint's training_state/ so a resumed run continues
with the very batches the uninterrupted run would have trained on (README, "Training data")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apprentice.train.config import TrainError

DATA_POSITION = "data_position.json"


def data_position(source: Any, per_epoch: int, batch_size: int, seed: int, world_size: int) -> dict[str, Any]:
    """What a checkpoint's training_state records about the data: the next micro-batch, its epoch and place
    in the epoch's order, and what that order depends on (seed, batch size, processes)."""
    epoch, in_epoch = divmod(int(source.position), per_epoch)
    return {"micro_batch": int(source.position), "epoch": epoch, "batch_in_epoch": in_epoch,
            "batches_per_epoch": per_epoch, "batch_size": batch_size, "seed": seed, "world_size": world_size}


def resume_position(state_dir: Path | None, default: int, per_epoch: int, batch_size: int) -> int:
    """The micro-batch a resumed run starts at: the checkpoint's data position (mapped by samples seen when
    --batch_size changed), else `default` (step x accumulation: checkpoints written before it existed)."""
    path = state_dir / DATA_POSITION if state_dir is not None else None
    if path is None or not path.is_file():
        return default
    try:
        saved = json.loads(path.read_text())
        if saved["batch_size"] == batch_size and saved["batches_per_epoch"] == per_epoch:
            return int(saved["micro_batch"])
        samples = int(saved["batch_in_epoch"]) * int(saved["batch_size"])
        return int(saved["epoch"]) * per_epoch + min(per_epoch - 1, samples // batch_size)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainError(f"{path} is unreadable ({exc}); delete it to resume from the step count") from exc
