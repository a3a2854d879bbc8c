"""HIL-SERL's offline buffer: demonstrations from a LeRobotDataset, or scripted ones recorded in sim,
as replay-buffer episodes (observations, action, next.reward, next.done, complementary_info.*)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from apprentice.rl.intervention import DISCRETE_PENALTY, IS_INTERVENTION
from apprentice.rl.replay import ReplayBuffer, ReplayError

IMAGE_PREFIX = "observation.images."


def buffer_from_dataset(root: str | Path, obs_keys: list[str], capacity: int | None = None) -> ReplayBuffer:
    """Every episode of the dataset at `root`; next.reward/next.done must be recorded (HIL-SERL learns from them)."""
    from apprentice.dataset import DatasetError, LeRobotDataset

    try:
        ds = LeRobotDataset(root)
    except DatasetError as exc:
        raise ReplayError(f"--dataset.root={root}: {exc}") from exc
    missing = [k for k in [*obs_keys, "action", "next.reward", "next.done"] if k not in ds.features]
    if missing:
        raise ReplayError(
            f"dataset {root} lacks {missing} (it has {sorted(ds.features)}); record demos with rewards, "
            "e.g. `apprentice record` in the gym_hil env"
        )
    episodes = ds.column("episode_index")
    extra = [k for k in ds.features if k.startswith("complementary_info.")]
    buffer = ReplayBuffer(capacity)
    for ep in np.unique(episodes):
        rows = episodes == ep
        frames: dict[str, np.ndarray] = {}
        for key in [*obs_keys, "action", "next.reward", "next.done", *extra]:
            if key.startswith(IMAGE_PREFIX):
                frames[key] = np.ascontiguousarray(ds.episode_frames(int(ep), key).transpose(0, 3, 1, 2))
            else:
                col = np.asarray(ds.column(key)[rows])
                frames[key] = col.reshape(len(col)) if key.startswith("next.") or key in extra else col
        frames["next.done"] = frames["next.done"].astype(bool)
        frames["next.done"][-1] = True  # a recorded episode ends; nothing to bootstrap from past it
        frames.setdefault(IS_INTERVENTION, np.ones(len(frames["action"]), np.float32))  # a human drove it
        frames.setdefault(DISCRETE_PENALTY, np.zeros(len(frames["action"]), np.float32))
        buffer.add_episode(frames)
    return buffer


def scripted_demos(env: Any, n: int, first_seed: int, capacity: int | None = None) -> tuple[ReplayBuffer, int]:
    """`n` episodes of the task's scripted expert (gym-hil's pick); returns the buffer and how many succeeded."""
    from apprentice.rl.episode import run_episode
    from apprentice.sim import make_expert

    expert = make_expert(env)
    buffer = ReplayBuffer(capacity)
    successes = 0
    for i in range(n):
        frames, has_action, stats = run_episode(env, first_seed + i, act=lambda o: expert.act(o), reset=expert.reset,
                                                flag_all=True)
        buffer.add_episode(frames, has_action)
        successes += int(stats["success"])
    return buffer, successes


def write_buffer_dataset(buffer: ReplayBuffer, root: str | Path, env: Any, task: str = "pick_cube") -> Path:
    """The buffer's episodes as a LeRobotDataset (observations, executed action, next.reward, next.done and
    `complementary_info.*` columns, lerobot's names), the final observation of each episode dropped."""
    from apprentice.dataset import DatasetWriter

    features = {k: dict(v) for k, v in env.features.items() if k in buffer.data}
    features["action"] = {"dtype": "float32", "shape": [buffer.data["action"].shape[1]], "names": None}
    for key in ("next.reward", "next.done", IS_INTERVENTION, DISCRETE_PENALTY):
        dtype = "bool" if key == "next.done" else "float32"
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    with DatasetWriter.create(root, features=features, fps=int(env.fps), robot_type=getattr(env, "robot_type", None),
                              vcodec="h264") as writer:
        for ep in np.unique(buffer.episode_index):
            rows = np.flatnonzero((buffer.episode_index == ep) & buffer.has_action)
            for i in rows:
                frame = {}
                for key in features:
                    value = buffer.data[key][i]
                    if key.startswith(IMAGE_PREFIX):
                        value = value.transpose(1, 2, 0)
                    elif key.startswith(("next.", "complementary_info.")):
                        value = np.asarray([value], dtype=bool if key == "next.done" else np.float32)
                    frame[key] = value
                writer.add_frame(frame)
            writer.save_episode(task=task)
    return Path(root)
