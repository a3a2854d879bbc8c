"""Human interventions: while the policy acts, an operator may take over; the executed action is then
theirs and the transition carries `complementary_info.is_intervention` (lerobot's TeleopEvents name).

`InterventionSource` is what the HIL-SERL loop and the actor (`apprentice.rl.actor`, `RobotEnv`) ask
each step. A teleop device (leader arm, keyboard, gamepad) implements it by returning its action while
its takeover switch is held; `ScriptedHuman` is the simulated operator of gym-hil's PandaPickCube used
by tests, CI and the benchmark.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import numpy as np

IS_INTERVENTION = "complementary_info.is_intervention"
DISCRETE_PENALTY = "complementary_info.discrete_penalty"


class InterventionSource(Protocol):
    def reset(self) -> None:
        """A new episode starts."""

    def intervene(self, obs: dict[str, np.ndarray], policy_action: np.ndarray) -> np.ndarray | None:
        """The operator's action for this step, or None to let the policy's action stand."""


class ScriptedHuman:
    """A simulated operator for PandaPickCube: watches the policy and takes over when it drifts.

    Drift: over the last `patience` steps the gripper came no closer (by `min_progress` m) to where the
    pick should go next (above the cube, the cube, then up). It then drives with the scripted expert for
    `hold_steps` steps and hands back (a grasp it started, it finishes). As the policy improves it drifts
    less and the rate falls.
    """

    def __init__(self, env: Any, patience: int = 4, hold_steps: int = 8, min_progress: float = 0.004) -> None:
        from apprentice.sim import make_expert

        self.env = env
        self.expert = make_expert(env)
        self.patience, self.hold_steps, self.min_progress = patience, hold_steps, min_progress
        self.reset()

    def reset(self) -> None:
        self.expert.reset()
        self._distances: deque[float] = deque(maxlen=self.patience + 1)
        self._holding = 0
        self.steps = 0
        self.intervened_steps = 0

    def _target(self) -> np.ndarray:
        cube = self.env.cube_position
        phase = self.expert.phase
        if phase == "hover":
            return cube + np.array([0.0, 0.0, self.expert.HOVER])
        if phase in ("descend", "close"):
            return cube
        return cube + np.array([0.0, 0.0, 0.2])

    def intervene(self, obs: dict[str, np.ndarray], policy_action: np.ndarray) -> np.ndarray | None:
        cube, tcp = self.env.cube_position, self.env.tcp_position
        # The expert's plan follows the scene, whoever drives: a lost grasp or a wide miss starts over.
        if self.expert.phase != "hover" and np.linalg.norm((cube - tcp)[:2]) > 0.02:
            self.expert.reset()
        expert_action = self.expert.act(obs)  # advances the expert's phase every step
        self.steps += 1
        self._distances.append(float(np.linalg.norm(self._target() - tcp)))
        stalled = len(self._distances) > self.patience and (
            self._distances[0] - min(list(self._distances)[1:]) < self.min_progress
        )
        if self._holding == 0 and stalled:
            self._holding = self.hold_steps
        if self._holding > 0:
            self._holding -= 1
            # A person who has started a grasp finishes it rather than handing back a half-closed gripper
            # (seen on CPU: released mid-grasp, the untrained policy dropped the cube in most episodes).
            if self._holding == 0 and self.expert.phase in ("close", "lift"):
                self._holding = 1
            self.intervened_steps += 1
            if self._holding == 0:
                self._distances.clear()  # judge the policy afresh from here
            return expert_action
        return None
