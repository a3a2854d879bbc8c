"""Vectorised sim envs for evaluation: gymnasium's SyncVectorEnv / AsyncVectorEnv over `make_env` slots.

Each sub-env is wrapped in an `EvalSlot` that keeps one evaluation episode independent of whatever the
vector env does after it ends: once an episode is over the slot replays its last transition (reward 0)
and absorbs gymnasium's autoreset, so no new episode starts, no physics or rendering runs for it, and
the next rollout's explicit seeded reset is the only thing that starts one. The slot also writes its
episode's video (encoding where the env lives: in the worker process with AsyncVectorEnv) and hosts
the task's scripted expert, whose privileged state lives in the same process as the simulator.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from apprentice.sim import SimError, make_env, make_expert

# The reset option that starts a real evaluation episode; an argument-less reset (gymnasium's autoreset
# of a slot whose episode ended) does not. Value: {"live": n, "videos": {slot index: mp4 path}}.
ROLLOUT_OPTION = "apprentice_rollout"


def image_key(env: Any) -> str:
    """The observation key of an env's camera (`observation.images.<camera>`, or the env's own)."""
    return getattr(env, "image_key", f"observation.images.{env.camera}")


class EvalSlot(gym.Wrapper):
    """One sub-env of an evaluation vector env (slot `index` of the batch); see the module docstring."""

    def __init__(self, env: gym.Env, index: int) -> None:
        super().__init__(env)
        self.index = index
        self._held: tuple | None = None  # the last transition of an ended episode, replayed
        self._obs: dict[str, np.ndarray] | None = None
        self._expert: Any = None
        self._encoder: Any = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        plan = (options or {}).get(ROLLOUT_OPTION)
        if plan is None and self._held is not None:
            obs, _, _, _, info = self._held  # gymnasium's autoreset of an ended episode: absorbed
            return obs, info
        inner_options = {k: v for k, v in (options or {}).items() if k != ROLLOUT_OPTION} or None
        self._held = None
        obs, info = self.env.reset(seed=seed, options=inner_options)
        self._obs = obs
        self._encoder = None
        if plan is not None:
            path = plan["videos"].get(self.index)
            if path is not None:
                self._start_video(Path(path))
                self._keep_frame(obs)
            if self.index >= plan["live"]:
                # A spare slot of a short last batch: it gives the policy a full batch but never steps.
                self._held = (obs, 0.0, False, True, info)
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self._held is not None:
            return self._held
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs = obs
        self._keep_frame(obs)
        if terminated or truncated:
            self._held = (obs, 0.0, terminated, truncated, info)
        return obs, reward, terminated, truncated, info

    # ---------------------------------------------------------------- called through VectorEnv.call
    def finish_video(self) -> str | None:
        """Close this episode's video; its path, or None when this slot recorded none."""
        if self._encoder is None:
            return None
        encoder, self._encoder = self._encoder, None
        encoder.finish()
        return str(encoder.path)

    def instruction(self) -> str:
        """The current episode's language instruction: `task_description` (LIBERO's name in lerobot), else
        `task`, else ''. Looked up here, not by get_attr: a missing attribute would kill an async worker."""
        for name in ("task_description", "task"):
            value = getattr(self.env.unwrapped, name, None)
            if value is None:
                value = getattr(self.env, name, None)
            if value is not None:
                return str(value)
        return ""

    def expert_reset(self) -> None:
        """Start the task's scripted expert on the current episode (built once per slot)."""
        if self._expert is None:
            self._expert = make_expert(self.env)
        self._expert.reset(self._obs)

    def expert_action(self) -> np.ndarray:
        """The expert's action for the current observation (zeros once the episode ended: never applied)."""
        if self._held is not None:
            return np.zeros(self.action_space.shape, dtype=np.float32)
        return np.asarray(self._expert.act(self._obs), dtype=np.float32)

    # ------------------------------------------------------------------------------------ video
    def _start_video(self, path: Path) -> None:
        from apprentice.dataset.video import EpisodeEncoder

        path.parent.mkdir(parents=True, exist_ok=True)
        self._encoder = EpisodeEncoder(path, fps=int(self.env.fps), vcodec="h264", crf=23)

    def _keep_frame(self, obs: dict[str, np.ndarray]) -> None:
        if self._encoder is not None:
            frame = obs.get(image_key(self.env))  # the policy's own view when it has one: no extra render
            self._encoder.put(np.array(frame if frame is not None else self.env.render(), copy=True))


def _make_slot(task: str, index: int, env_kwargs: dict[str, Any]) -> EvalSlot:
    return EvalSlot(make_env(task, **env_kwargs), index)


def auto_batch_size(n_episodes: int) -> int:
    """LeRobot's `--eval.batch_size=0`: ~1 core per env with headroom, at most n_episodes and 64."""
    return min(max(1, math.floor((os.cpu_count() or 4) * 0.7)), n_episodes, 64)


def make_vector_env(
    task: str, batch_size: int, env_kwargs: dict[str, Any] | None = None, use_async_envs: bool = False
) -> gym.vector.VectorEnv:
    """`batch_size` slots of `task`, stepped together (AsyncVectorEnv: one worker process per slot).

    Like LeRobot, a batch of one is always synchronous. Autoreset is gymnasium's NEXT_STEP, which the
    slots absorb; the reward, termination and info of an episode's last step arrive with that step.
    """
    if batch_size < 1:
        raise SimError(f"--eval.batch_size must be >= 1 (or 0 for automatic), got {batch_size}")
    fns = [functools.partial(_make_slot, task, i, dict(env_kwargs or {})) for i in range(batch_size)]
    if use_async_envs and batch_size > 1:
        # forkserver, as LeRobot: a forked child would inherit the parent's GL context and torch threads.
        return gym.vector.AsyncVectorEnv(
            fns, context="forkserver", autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
        )
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
