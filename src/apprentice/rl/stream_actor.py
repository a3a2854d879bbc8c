"""`StreamActor`: the RL actor of a ROS 2 robot, without ROS — contract observations in, commands out.

The RL actor node (`apprentice.nodes.rl_actor_node`) pushes each decoded message here and calls
`tick()` at the contract's fps. A tick samples every observation feature (the recorder's alignment
rule: latest message at or before the tick, within max_age), closes the previous tick's transition
with this observation as its next one, and picks the action: the policy's (`OnlineAlgorithm`), or,
while the intervention flag is on, the operator's — the contract's action topic (the leader arm),
exactly what the recorder stores as the action. The command is that action in the contract's command
units. An episode ends when the success flag comes (terminated) or after `max_episode_steps`
(truncated); the node then resets the scene and calls `start_episode()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from apprentice.rl.algorithm import OnlineAlgorithm
from apprentice.rl.transport.actor_client import ActorClient, OutboxFull
from apprentice.rl.transport.codec import Transition


@dataclass
class TickResult:
    command: np.ndarray | None  # command-unit positions to publish, None = publish nothing (hold)
    reason: str  # "policy", "intervention", or why nothing is commanded
    episode_done: bool = False  # the node should reset the scene, then call start_episode()


def contract_features(contract: Any) -> dict[str, dict[str, Any]]:
    """The handshake's feature table of a contract: each observation and the action (dtype, shape)."""
    return {s.key: {"dtype": s.dtype, "shape": list(s.shape)} for s in [*contract.observations, contract.action]}


class StreamActor:
    def __init__(self, contract: Any, algorithm: OnlineAlgorithm, client: ActorClient,
                 max_episode_steps: int, terminate_on_success: bool = True) -> None:
        from apprentice.bag import LatestSampler  # the recorder's alignment rule, shared on purpose

        self.contract, self.algorithm, self.client = contract, algorithm, client
        self.max_episode_steps, self.terminate_on_success = max_episode_steps, terminate_on_success
        self.sampler = LatestSampler(list(contract.observations), max_history=64)
        self.leader = LatestSampler([contract.action], max_history=16)
        self.intervention = False
        self.success = False
        self.reward = 0.0  # accumulated since the last tick (a reward topic may publish at any rate)
        self.running = False
        self.steps = 0
        self.episodes = 0
        self.interventions = 0  # this episode's
        self.interventions_total = 0
        self.parameter_updates = 0
        self._pending: tuple[dict[str, np.ndarray], np.ndarray, bool] | None = None

    # -- inputs -------------------------------------------------------------------------------------
    def push(self, key: str, stamp_ns: int, value: np.ndarray) -> None:
        (self.leader if key == "action" else self.sampler).push(key, stamp_ns, value)

    def start_episode(self) -> None:
        self.running, self.steps, self.success, self.reward, self._pending = True, 0, False, 0.0, None

    # -- the tick -----------------------------------------------------------------------------------
    def tick(self, tick_ns: int) -> TickResult:
        if not self.running:
            return TickResult(None, "waiting for the episode to start (reset)")
        sample = self.sampler.sample(tick_ns)
        if sample is None:
            return TickResult(None, f"stale: {', '.join(self.sampler.stale_keys(tick_ns)) or 'no observation yet'}")
        obs = {k: np.asarray(v) for k, v in sample.items()}
        if self._pending is not None:
            done = self._close_transition(obs)
            if done is None:
                return TickResult(None, f"learner unreachable, outbox full ({self.client.stats.last_error})")
            if done:
                self.running = False
                self.episodes += 1
                return TickResult(None, "episode done", episode_done=True)
        if (latest := self.client.poll_parameters()) is not None:
            self.algorithm.load_actor_state_dict(latest[1])
            self.parameter_updates += 1
        human = self.leader.sample(tick_ns) if self.intervention else None
        if self.intervention and human is None:
            return TickResult(None, "intervention: no fresh action on the contract's action topic (leader arm)")
        action = (np.asarray(human["action"], np.float32) if human is not None
                  else np.asarray(self.algorithm.select_action(obs), np.float32).reshape(-1))
        command = np.asarray(self.contract.action.encode_values(action)["positions"], np.float64)
        self._pending = (obs, action, human is not None)
        self.interventions += human is not None
        self.interventions_total += human is not None
        return TickResult(command, "intervention" if human is not None else "policy")

    def _close_transition(self, next_obs: dict[str, np.ndarray]) -> bool | None:
        """Send the previous tick's transition; True if it ended the episode, None if it could not be queued."""
        assert self._pending is not None
        obs, action, intervened = self._pending
        terminated = self.success and self.terminate_on_success
        truncated = not terminated and self.steps + 1 >= self.max_episode_steps
        done = terminated or truncated
        transition = Transition(obs, action, self.reward, terminated, truncated, intervened, self.success,
                                next_obs if done else None)
        try:
            self.client.put(transition, timeout=0.0)  # never block a control tick: hold instead
        except OutboxFull:  # (a TransportError of another kind — the learner rejects us — propagates)
            return None
        self.steps += 1
        self.reward = 0.0
        self._pending = None
        if done:
            self.client.send_interaction({"episode_length": self.steps, "success": self.success,
                                          "intervention_rate": self.interventions / max(1, self.steps)})
            self.interventions = 0
        return done
