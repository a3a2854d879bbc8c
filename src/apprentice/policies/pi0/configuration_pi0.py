"""π0's config: lerobot 0.6.1's PI0Config (type "pi0"); every field is in PiConfig."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from apprentice.policies.paligemma.config import PiConfig


@dataclass
class PI0Config(PiConfig):
    type: ClassVar[str] = "pi0"
