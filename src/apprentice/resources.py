"""Where the package's shipped files (config/, launch/) live: ament share dir or the source checkout."""

from __future__ import annotations

import os
from pathlib import Path


def share_dir() -> Path:
    """The directory holding config/ and launch/: $APPRENTICE_SHARE, the ament install, or the checkout."""
    if env := os.environ.get("APPRENTICE_SHARE"):
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "config").is_dir() and (checkout / "package.xml").is_file():
        return checkout
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "apprentice"
        if (candidate / "config").is_dir():
            return candidate
    raise FileNotFoundError(
        "cannot find apprentice's config/ directory: set APPRENTICE_SHARE or source the workspace"
    )


def config_path(*parts: str) -> Path:
    """A file under config/, e.g. config_path('robots', 'so101_follower.yaml')."""
    return share_dir().joinpath("config", *parts)
