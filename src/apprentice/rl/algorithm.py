"""The interface every online RL algorithm offers the actor and the learner (SAC and friends).

The learner calls `update` on batches from its replay buffer and ships `actor_state_dict` to the actors;
an actor loads it with `load_actor_state_dict` and acts with `select_action`. `state_dict` /
`load_state_dict` hold everything a resumed learner needs (networks, target networks, optimizers).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from torch import Tensor


class OnlineAlgorithm(Protocol):
    def update(self, batch: dict[str, Tensor]) -> dict[str, float]: ...

    def actor_state_dict(self) -> dict[str, Tensor]: ...

    def load_actor_state_dict(self, sd) -> None: ...

    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, sd) -> None: ...
