"""Training: `train(TrainConfig.from_args([...]))` or `apprentice train --policy.type=act ...`."""

from apprentice.train.config import DatasetConfig, TrainConfig, TrainError, WandbConfig


def train(cfg: TrainConfig):
    """Train per `cfg`; returns the last checkpoint's pretrained_model dir (a Path)."""
    from apprentice.train.loop import train as _train

    return _train(cfg)


__all__ = ["DatasetConfig", "TrainConfig", "TrainError", "WandbConfig", "train"]
