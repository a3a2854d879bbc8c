"""The actor: drives a gym-like env with the algorithm's policy, streams every transition to the learner.

    obs = env.reset(seed) → each step: newest weights from the learner (if any) → the policy's action →
    the intervention source may replace it (the operator's action is what the env executes and what is
    stored, flagged `is_intervention`) → env.step → a `Transition` to `ActorClient.put` → at the episode's
    end (terminated, truncated or `max_episode_steps`) a summary to the learner's interaction log.

Plain Python (any env with gymnasium's reset/step: `apprentice.sim` tasks such as gym-hil's
PandaPickCube, or `apprentice.rl.robot_env.RobotEnv` on a real arm). The ROS graph's version of this loop
is the RL actor node (`apprentice.nodes.rl_actor_node`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apprentice.rl.algorithm import OnlineAlgorithm
from apprentice.rl.intervention import InterventionSource
from apprentice.rl.transport.actor_client import ActorClient
from apprentice.rl.transport.codec import Transition

log = logging.getLogger(__name__)


class ScriptedIntervention:
    """A scripted "human" for sim: takes over with the expert when the policy's action drifts from it.

    ``drift`` is the L2 distance between policy and expert actions (over ``dims``) that counts as a
    drift; after ``patience`` drifting steps in a row the expert drives for ``takeover_steps`` steps.
    """

    def __init__(self, expert: Any, drift: float = 0.5, patience: int = 3, takeover_steps: int = 10,
                 dims: slice = slice(0, 3)) -> None:
        self.expert, self.drift, self.patience, self.takeover_steps, self.dims = (
            expert, drift, patience, takeover_steps, dims)
        self.reset()

    def reset(self) -> None:
        self.expert.reset()
        self._drifting = 0
        self._left = 0

    def intervene(self, obs: dict[str, np.ndarray], policy_action: np.ndarray) -> np.ndarray | None:
        expert = np.asarray(self.expert.act(obs), dtype=np.float32)  # the expert's phase follows the scene
        if self._left > 0:
            self._left -= 1
            return expert
        far = float(np.linalg.norm(expert[self.dims] - np.asarray(policy_action)[self.dims])) > self.drift
        self._drifting = self._drifting + 1 if far else 0
        if self._drifting >= self.patience:
            self._drifting, self._left = 0, self.takeover_steps - 1
            return expert
        return None


@dataclass
class ActorConfig:
    online_steps: int = 1000  # env steps to take (lerobot's name)
    max_episode_steps: int | None = None  # time limit on top of the env's own (None: the env's)
    fps: float | None = None  # pace the loop (a real robot); None: as fast as the env steps
    seed: int = 0  # episode k is reset with seed + k
    put_timeout_s: float | None = None  # how long a step may wait for outbox room (None: as long as it takes)


@dataclass
class ActorStats:
    steps: int = 0
    episodes: int = 0
    interventions: int = 0
    successes: int = 0
    parameter_updates: int = 0
    last_parameters_step: int = -1
    loop_s: list[float] = field(default_factory=list)  # per-step compute time (policy + env + put)

    @property
    def control_hz(self) -> float:
        return 1.0 / float(np.mean(self.loop_s)) if self.loop_s else 0.0


def run_actor(env: Any, algorithm: OnlineAlgorithm, client: ActorClient, config: ActorConfig,
              intervention: InterventionSource | None = None) -> ActorStats:
    """Take ``config.online_steps`` env steps; returns what happened. ``client`` must be connected."""
    stats = ActorStats()
    obs, _ = env.reset(seed=config.seed)
    if intervention is not None:
        intervention.reset()
    episode = _EpisodeTally()
    period = 1.0 / config.fps if config.fps else 0.0
    while stats.steps < config.online_steps:
        started = time.perf_counter()
        if (latest := client.poll_parameters()) is not None:
            algorithm.load_actor_state_dict(latest[1])
            stats.parameter_updates += 1
            stats.last_parameters_step = latest[0]
        action = np.asarray(algorithm.select_action(obs), dtype=np.float32)
        human = intervention.intervene(obs, action) if intervention is not None else None
        if human is not None:
            action = np.asarray(human, dtype=np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if info.get("is_intervention") and "action_intervention" in info:  # the env's own source (RobotEnv)
            human = np.asarray(info["action_intervention"], dtype=np.float32)
            action = human
        episode.length += 1
        # The step budget running out mid-episode cuts the episode like a time limit: the learner must see
        # its end, or the next run's first episode would be glued onto it.
        truncated = (bool(truncated) or stats.steps + 1 == config.online_steps
                     or (config.max_episode_steps is not None and episode.length >= config.max_episode_steps))
        success = bool(info.get("is_success", False))
        done = bool(terminated) or truncated
        client.put(Transition(obs, action, float(reward), bool(terminated), truncated, human is not None, success,
                              next_obs if done else None, info=_small_info(info)), timeout=config.put_timeout_s)
        episode.add(float(reward), human is not None, success)
        stats.steps += 1
        stats.interventions += human is not None
        obs = next_obs
        if done:
            stats.episodes += 1
            stats.successes += episode.success
            client.send_interaction(episode.summary(stats.steps, stats.last_parameters_step))
            obs, _ = env.reset(seed=config.seed + stats.episodes)
            if intervention is not None:
                intervention.reset()
            episode = _EpisodeTally()
        stats.loop_s.append(time.perf_counter() - started)
        if period:
            time.sleep(max(0.0, period - (time.perf_counter() - started)))
    return stats


@dataclass
class _EpisodeTally:
    length: int = 0
    reward: float = 0.0
    interventions: int = 0
    success: bool = False

    def add(self, reward: float, intervened: bool, success: bool) -> None:
        self.reward += reward
        self.interventions += intervened
        self.success |= success

    def summary(self, step: int, parameters_step: int) -> dict[str, Any]:
        # lerobot's interaction message: "Episodic reward", "Interaction step", "Episode intervention"
        return {"episodic_reward": self.reward, "interaction_step": step, "episode_length": self.length,
                "intervention_rate": self.interventions / max(1, self.length), "success": self.success,
                "policy_step": parameters_step}


def _small_info(info: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able scalars of an env's info (e.g. gym-hil's discrete_penalty)."""
    out = {}
    for key, value in info.items():
        if isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
            out[key] = value.item() if isinstance(value, np.generic) else value
    return out
