"""Scripted demonstrations straight into a LeRobot v3.0 dataset, through the dataset writer.

Every frame also carries what its action led to, as LeRobot's sim datasets (lerobot/pusht has all
three) store it for reward-based learners (TD-MPC, SAC / HIL-SERL): `next.reward`
(float32 [1]), `next.done` (bool [1], true on the episode's last frame) and `next.success`
(bool [1], the env's `info["is_success"]` after the step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apprentice.sim import SimError, make_env, make_expert

# The transition columns, with the dtypes, shapes and (null) names of LeRobot's sim datasets' info.json.
REWARD_FEATURES: dict[str, dict[str, Any]] = {
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
    "next.success": {"dtype": "bool", "shape": [1], "names": None},
}


@dataclass
class RecordResult:
    root: Path
    episodes_saved: int
    episodes_failed: int  # expert runs that did not succeed (discarded unless keep_failed)
    frames: int
    seeds: list[int] = field(default_factory=list)  # the env seed of each saved episode, in order
    seconds: float = 0.0
    attempts: int = 0  # expert runs, successful or not (with keep_failed a failed run is also saved)

    @property
    def expert_success_rate(self) -> float:
        return 0.0 if self.attempts == 0 else (self.attempts - self.episodes_failed) / self.attempts


def run_expert_episode(
    env: Any,
    expert: Any,
    seed: int,
    frames_after_success: int | None,
    on_frame: Callable[[dict], None] | None = None,
) -> tuple[bool, int]:
    """Run one seeded expert episode; `on_frame` gets each frame after its step: {observation...,
    "action", "next.reward", "next.done", "next.success"} (the observation the action was chosen on).

    The episode runs until `frames_after_success` frames after the first success (so demonstrations show
    the robot settling at the goal, which a policy must learn to do too; None: to the env's time limit),
    the env's time limit, or the env's own termination.
    Returns (succeeded, frames).
    """
    obs, _ = env.reset(seed=seed)
    expert.reset(obs)
    success_at: int | None = None
    frames = 0
    while True:
        action = expert.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        frames += 1
        success = bool(info["is_success"])
        if success and success_at is None:
            success_at = frames
        settled = success_at is not None and frames_after_success is not None
        done = bool(terminated or truncated or (settled and frames - success_at >= frames_after_success))
        if on_frame is not None:
            on_frame({
                **obs,
                "action": action,
                "next.reward": np.array([reward], dtype=np.float32),
                "next.done": np.array([done]),
                "next.success": np.array([success]),
            })
        obs = next_obs
        if done:
            return success_at is not None, frames


def record(
    task: str,
    root: str | Path,
    num_episodes: int,
    seed: int = 0,
    resume: bool = False,
    keep_failed: bool = False,
    frames_after_success: int | str | None = "task",
    max_attempts: int | None = None,
    vcodec: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> RecordResult:
    """Record `num_episodes` expert episodes of `task` into the dataset at `root`.

    Episode i of a fresh recording uses env seed `seed + attempt`; failed attempts are discarded (the
    writer's episode buffer is cleared) unless `keep_failed`. With `resume`, episodes are appended to an
    existing dataset (the writer recovers one that crashed mid-write).
    """
    from apprentice.dataset import DatasetWriter

    if num_episodes < 1:
        raise SimError(f"num_episodes must be >= 1, got {num_episodes}")
    root = Path(root)
    env = make_env(task, seed=seed, render=True, terminate_on_success=False, **(env_kwargs or {}))
    expert = make_expert(env)
    if frames_after_success == "task":
        frames_after_success = env.frames_after_success
    max_attempts = max_attempts if max_attempts is not None else 2 * num_episodes + 10
    result = RecordResult(root=root, episodes_saved=0, episodes_failed=0, frames=0)
    started = time.perf_counter()
    features = {**env.features, **REWARD_FEATURES}
    if resume:
        writer = DatasetWriter.open(root)
        # A dataset recorded before the reward columns existed is appended to without them.
        features = {k: v for k, v in features.items() if k in env.features or k in writer.features}
        mismatch = _feature_mismatch(writer.features, features)
        if mismatch:
            writer.finalize()
            raise SimError(f"{root} holds other features than {task!r} records ({mismatch}); record into a new --out")
    else:
        if root.exists():
            raise SimError(f"{root} already exists; choose a new --out, or pass --resume to append episodes")
        create_kwargs: dict[str, Any] = {
            "features": features,
            "fps": env.fps,
            "robot_type": env.robot_type,
        }
        if vcodec is not None:
            create_kwargs["vcodec"] = vcodec
        writer = DatasetWriter.create(root, **create_kwargs)
    try:
        with writer:
            for attempt in range(max_attempts):
                if result.episodes_saved >= num_episodes:
                    break
                ep_seed = seed + attempt
                ok, frames = run_expert_episode(
                    env,
                    expert,
                    ep_seed,
                    frames_after_success,
                    lambda f: writer.add_frame({**{k: f[k] for k in features}, "task": env.task}),
                )
                result.attempts += 1
                if ok or keep_failed:
                    index = writer.save_episode(task=env.task)
                    result.episodes_saved += 1
                    result.frames += frames
                    result.seeds.append(ep_seed)
                    log(f"episode {index}: seed {ep_seed}, {frames} frames, {'success' if ok else 'FAILED'}")
                else:
                    writer.clear_episode_buffer()
                    log(f"seed {ep_seed}: expert failed, episode discarded")
                if not ok:
                    result.episodes_failed += 1
    finally:
        env.close()
    result.seconds = time.perf_counter() - started
    if result.episodes_saved < num_episodes:
        raise SimError(
            f"only {result.episodes_saved}/{num_episodes} expert episodes of {task!r} succeeded in "
            f"{max_attempts} attempts; the {result.episodes_saved} saved are in {root} (append with --resume)"
        )
    return result


def _feature_mismatch(existing: dict[str, dict], recorded: dict[str, dict]) -> str:
    """'' when the dataset's features are the task's (names and shapes), else what differs."""
    if set(existing) != set(recorded):
        return f"keys {sorted(existing)} vs {sorted(recorded)}"
    for key, ft in recorded.items():
        if list(existing[key]["shape"]) != list(ft["shape"]):
            return f"{key} shape {list(existing[key]['shape'])} vs {list(ft['shape'])}"
    return ""
