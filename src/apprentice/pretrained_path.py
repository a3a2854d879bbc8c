"""Where a `--policy.path`/`-p` flag points: a `pretrained_model/` directory, never a pickle file.

The seed's commands pass `-p outputs/train/checkpoints/last.pt`; Apprentice loads only JSON +
safetensors (torch.load would run whatever the pickle says), so such a path is refused up front with
the directory to pass instead. Plain Python (no torch): the CLIs check before loading anything.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "config.json"  # as policies/pretrained.py writes and reads it
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".bin")


class PretrainedPathError(ValueError):
    """A policy path flag that does not name a pretrained_model directory."""


def suggested_directory(path: Path) -> Path:
    """checkpoints/last.pt -> checkpoints/last/pretrained_model (the layout `apprentice train` writes)."""
    if path.suffix:
        path = path.with_suffix("")
    return path if path.name == "pretrained_model" else path / "pretrained_model"


def check_pretrained_dir(value: str | Path, flag: str = "--policy.path") -> Path:
    """Return `value` as a directory holding config.json (or a checkpoints/<step> dir above one), else raise."""
    path = Path(value).expanduser()
    hint = (f"pass the checkpoint's pretrained_model directory, e.g. {suggested_directory(path)} "
            f"({CONFIG_NAME} + model.safetensors, written by `apprentice train` or lerobot-train)")
    if path.is_file() or (not path.exists() and path.suffix in PICKLE_SUFFIXES):
        kind = "a pickle file" if path.suffix in PICKLE_SUFFIXES else "a file"
        raise PretrainedPathError(f"{flag} {value}: {kind}, not a directory; Apprentice never unpickles — {hint}")
    if not path.is_dir():
        raise PretrainedPathError(f"{flag} {value}: no such directory; {hint}")
    if not (path / CONFIG_NAME).is_file() and not (path / "pretrained_model" / CONFIG_NAME).is_file():
        raise PretrainedPathError(f"{flag} {value}: no {CONFIG_NAME} in this directory; {hint}")
    return path
