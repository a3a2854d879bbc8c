"""π0.5's config: lerobot 0.6.1's PI05Config (type "pi05"): quantile normalization, 200-token prompts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from apprentice.policies.paligemma.config import PiConfig


@dataclass
class PI05Config(PiConfig):
    type: ClassVar[str] = "pi05"

    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "QUANTILES", "ACTION": "QUANTILES"}
    )
    tokenizer_max_length: int = 200  # the prompt carries the discretized state
