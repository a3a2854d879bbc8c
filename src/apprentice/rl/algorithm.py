"""The online-algorithm protocol the learner drives (in-process HIL-SERL here; the gRPC learner of
`rl/transport` too): one update per call, the actor's weights out to actors, everything for resume.

Batch layout given to `update` (flat, raw dataset units, leading dim B):
    observation.*            (B, …)   the observation at t (images uint8 or float in [0, 1], (B, C, H, W))
    next.observation.*       (B, …)   the observation at t + 1
    action                   (B, A)   the action executed at t (the human's where it intervened)
    next.reward              (B,)
    next.done                (B,)     termination at t + 1 (not a time-limit truncation)
    complementary_info.*     (B,)     optional: discrete_penalty, is_intervention
An algorithm with `utd_ratio` > 1 takes `utd_ratio` such batches stacked along B and splits them.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

NEXT_PREFIX = "next."


@runtime_checkable
class OnlineAlgorithm(Protocol):
    def update(self, batch: dict[str, Tensor]) -> dict[str, float]: ...

    def actor_state_dict(self) -> dict[str, Tensor]: ...

    def load_actor_state_dict(self, sd: Any) -> None: ...

    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, sd: Any) -> None: ...
