"""Evaluation-episode bookkeeping: per-episode outcome while the policy drives, and the success rate.

Used by the policy node's evaluation mode (sim or hardware): an episode starts (the policy is reset),
success signals arrive (a topic such as `sim/is_success`, or an operator's verdict), the episode
ends after its time or on success; the book writes `eval_info.json` in the layout of LeRobot's eval
(`per_task`, `per_group`, `overall`; `apprentice.eval_info`), as `apprentice eval` does in simulation.
On a robot there is no reward signal, so each episode's reward is its success (1.0 or 0.0): the sparse
reward of the sim benchmarks, which keeps `avg_max_reward` equal to the success rate.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from apprentice.deploy import DeployError
from apprentice.eval_info import build_eval_info, task_metrics


@dataclass
class EpisodeResult:
    episode_index: int
    success: bool
    duration_s: float
    steps: int  # actions published
    held_ticks: int  # ticks without a command (stale inputs, starved queue, watchdog)
    seed: int | None = None
    first_success_s: float | None = None


class EvalBook:
    """Episodes in progress and done; ``success`` is sticky within an episode (as LeRobot's eval).

    `task_group` / `task` name the evaluation in eval_info.json (LeRobot: the env type and task).
    """

    def __init__(self, task_group: str = "robot", task: str = "robot") -> None:
        self.task_group, self.task = task_group, task
        self.episodes: list[EpisodeResult] = []
        self._current: dict | None = None

    def start(self, seed: int | None = None) -> int:
        if self._current is not None:
            raise DeployError("an evaluation episode is already running; end it before starting another")
        index = len(self.episodes)
        self._current = {"episode_index": index, "seed": seed, "steps": 0, "held": 0, "success_s": None}
        return index

    @property
    def running(self) -> bool:
        return self._current is not None

    def record_tick(self, commanded: bool) -> None:
        if self._current is not None:
            self._current["steps" if commanded else "held"] += 1

    def record_success(self, success: bool, elapsed_s: float) -> None:
        if self._current is not None and success and self._current["success_s"] is None:
            self._current["success_s"] = elapsed_s

    @property
    def current_success(self) -> bool:
        return self._current is not None and self._current["success_s"] is not None

    def end(self, duration_s: float) -> EpisodeResult:
        if self._current is None:
            raise DeployError("no evaluation episode is running")
        cur, self._current = self._current, None
        result = EpisodeResult(
            episode_index=cur["episode_index"],
            success=cur["success_s"] is not None,
            duration_s=duration_s,
            steps=cur["steps"],
            held_ticks=cur["held"],
            seed=cur["seed"],
            first_success_s=cur["success_s"],
        )
        self.episodes.append(result)
        return result

    @property
    def success_rate(self) -> float:
        return sum(e.success for e in self.episodes) / len(self.episodes) if self.episodes else 0.0

    def summary(self) -> dict:
        """eval_info.json's content: LeRobot's keys, plus each episode's duration, held ticks and success time."""
        episodes = self.episodes
        rewards = [float(e.success) for e in episodes]
        metrics = task_metrics(
            self.task,
            seeds=[],
            successes=[e.success for e in episodes],
            sum_rewards=rewards,
            max_rewards=rewards,
            lengths=[e.steps for e in episodes],
            video_paths=[],
        )
        # Hardware episodes may have no seed; a sim-driven evaluation passes one per episode.
        metrics["seeds"] = [e.seed for e in episodes]
        metrics["durations_s"] = [e.duration_s for e in episodes]
        metrics["held_ticks"] = [e.held_ticks for e in episodes]
        metrics["first_success_s"] = [e.first_success_s for e in episodes]
        eval_s = sum(e.duration_s for e in episodes)
        seed = episodes[0].seed if episodes else None
        info = build_eval_info([{"task_group": self.task_group, "task_id": 0, "metrics": metrics}], eval_s, seed)
        info["overall"]["avg_duration_s"] = eval_s / len(episodes) if episodes else 0.0
        return info

    def write(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write eval_info.json atomically (rename), so a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**self.summary(), **(extra or {})}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
        return path
