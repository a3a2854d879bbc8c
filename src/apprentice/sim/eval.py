"""Policy evaluation in simulation: batched seeded rollouts → success rate, rewards, videos, eval_info.json.

The layout of eval_info.json follows LeRobot's eval (`per_episode`, `aggregated`, `video_paths`), with
`success_rate` (0..1) beside LeRobot's `pc_success` (percent).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apprentice.sim import SimError, make_env, make_expert

# Eval seeds start far from the recording seeds (0, 1, ...) so evaluation episodes are held out.
DEFAULT_EVAL_SEED = 100_000


@dataclass
class EpisodeResult:
    episode_ix: int
    seed: int
    success: bool
    sum_reward: float
    max_reward: float
    length: int


class ExpertPolicy:
    """The task's scripted expert behind the policy interface (reset / batched select_action): a baseline."""

    def __init__(self, envs: Sequence[Any]) -> None:
        self.experts = [make_expert(env) for env in envs]
        self._fresh = True

    def reset(self) -> None:
        self._fresh = True

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        rows = _unbatch(obs, len(obs["task"]))  # the last batch of an eval may be smaller than the envs
        if self._fresh:
            for expert, row in zip(self.experts, rows):
                expert.reset(row)
            self._fresh = False
        return np.stack([expert.act(row) for expert, row in zip(self.experts, rows)])


class ZeroPolicy:
    """Commands all-zero actions: the floor any learned policy must beat."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def reset(self) -> None:
        pass

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        return np.zeros((len(obs["task"]), self.action_dim), dtype=np.float32)


def _unbatch(obs: dict[str, Any], n: int) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(v[i]) for k, v in obs.items() if k != "task"} for i in range(n)]


def _batch(
    observations: Sequence[dict[str, np.ndarray]], task: str, as_torch: bool, device: Any = "cpu"
) -> dict[str, Any]:
    """Stack per-env observations the way the dataset gives them: images (B, 3, H, W) float in [0, 1]."""
    batch: dict[str, Any] = {}
    for key in observations[0]:
        stacked = np.stack([o[key] for o in observations])
        if stacked.dtype == np.uint8 and stacked.ndim == 4:  # camera frames, whatever their key
            stacked = stacked.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        batch[key] = stacked.astype(np.float32)
    if as_torch:
        import torch

        batch = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
    batch["task"] = [task] * len(observations)
    return batch


def _to_numpy(action: Any) -> np.ndarray:
    if hasattr(action, "detach"):
        action = action.detach().to("cpu").float().numpy()
    return np.asarray(action, dtype=np.float32)


def rollout(
    envs: Sequence[Any],
    policy: Any,
    seeds: Sequence[int],
    first_episode_ix: int,
    record_frames: int = 0,
) -> tuple[list[EpisodeResult], list[list[np.ndarray]]]:
    """Run one episode in each of the first len(seeds) envs in lockstep; the policy sees the batch.

    An env that is done keeps being fed to the policy (batch shape stays fixed) but is not stepped.
    Returns per-episode results and the rendered frames of the first `record_frames` envs.
    """
    n = len(seeds)
    envs = envs[:n]
    as_torch = not isinstance(policy, ExpertPolicy | ZeroPolicy)
    observations = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]
    policy.reset()
    done = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    sums = np.zeros(n)
    maxes = np.full(n, -np.inf)
    lengths = np.zeros(n, dtype=int)
    frames: list[list[np.ndarray]] = [[] for _ in range(min(record_frames, n))]
    camera_key = envs[0].image_key

    def keep_frames(stepped: np.ndarray) -> None:
        for i in range(len(frames)):
            if stepped[i]:
                frame = observations[i].get(camera_key)
                frames[i].append(frame if frame is not None else envs[i].render())

    keep_frames(~done)
    while not done.all():
        actions = _to_numpy(
            policy.select_action(_batch(observations, envs[0].task, as_torch, getattr(policy, "device", "cpu")))
        )
        if actions.shape[0] != n:
            raise SimError(f"policy returned {actions.shape[0]} actions for a batch of {n} observations")
        stepped = ~done
        for i in np.flatnonzero(stepped):
            obs, reward, terminated, truncated, info = envs[i].step(actions[i])
            observations[i] = obs
            sums[i] += reward
            maxes[i] = max(maxes[i], reward)
            lengths[i] += 1
            success[i] |= bool(info["is_success"])  # sticky: success at any step counts, as in LeRobot
            done[i] = terminated or truncated
        keep_frames(stepped)
    results = [
        EpisodeResult(
            first_episode_ix + i,
            int(seeds[i]),
            bool(success[i]),
            float(sums[i]),
            float(maxes[i]),
            int(lengths[i]),
        )
        for i in range(n)
    ]
    return results, frames


def evaluate(
    policy: Any | Callable[[Sequence[Any]], Any],
    task: str,
    n_episodes: int = 50,
    batch_size: int = 10,
    seed: int = DEFAULT_EVAL_SEED,
    output_dir: str | Path | None = None,
    max_episodes_rendered: int = 4,
    env_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate `policy` (or a factory `envs -> policy`, e.g. ExpertPolicy) on `n_episodes` seeded episodes.

    Episode i uses env seed `seed + i`, so a (policy, seed) pair always gives the same numbers. With
    `output_dir`, writes eval_info.json and the first `max_episodes_rendered` rollouts as mp4.
    """
    if n_episodes < 1 or batch_size < 1:
        raise SimError(f"n_episodes and batch_size must be >= 1, got {n_episodes} and {batch_size}")
    batch_size = min(batch_size, n_episodes)
    envs = [make_env(task, seed=seed, **_env_kwargs_for(policy, env_kwargs)) for _ in range(batch_size)]
    if isinstance(policy, type) or not hasattr(policy, "select_action"):
        policy = policy(envs)
    _check_policy_fits(policy, envs[0], task)
    started = time.perf_counter()
    results: list[EpisodeResult] = []
    video_paths: list[str] = []
    try:
        for start in range(0, n_episodes, batch_size):
            seeds = [seed + i for i in range(start, min(start + batch_size, n_episodes))]
            to_render = max(0, min(max_episodes_rendered - start, len(seeds))) if output_dir else 0
            batch_results, frames = rollout(envs, policy, seeds, start, record_frames=to_render)
            results += batch_results
            for result, episode_frames in zip(batch_results, frames):
                video_paths.append(str(_write_video(Path(output_dir), result, episode_frames, envs[0].fps)))
            if log is not None:
                done = len(results)
                rate = np.mean([r.success for r in results])
                log(f"{done}/{n_episodes} episodes, success so far {rate:.0%}")
    finally:
        for env in envs:
            env.close()
    elapsed = time.perf_counter() - started
    info = {
        "task": task,
        "per_episode": [asdict(r) for r in results],
        "aggregated": {
            "avg_sum_reward": float(np.mean([r.sum_reward for r in results])),
            "avg_max_reward": float(np.mean([r.max_reward for r in results])),
            "success_rate": float(np.mean([r.success for r in results])),
            "pc_success": float(100.0 * np.mean([r.success for r in results])),
            "n_episodes": n_episodes,
            "seed": seed,
            "eval_s": elapsed,
            "eval_ep_s": elapsed / n_episodes,
        },
        "video_paths": video_paths,
    }
    if output_dir is not None:
        write_eval_info(output_dir, info)
    return info


def _check_policy_fits(policy: Any, env: Any, task: str) -> None:
    """A policy trained for another robot or camera size fails here, by name, not deep inside torch."""
    config = getattr(policy, "config", None)
    if config is None:
        return
    spaces = env.observation_space.spaces
    for key, ft in config.input_features.items():
        shape = tuple(ft.shape)
        if ft.type == "VISUAL" and len(shape) == 3:
            shape = (shape[1], shape[2], shape[0])  # policies see (C, H, W), envs give (H, W, C)
        if key not in spaces:
            raise SimError(f"the policy needs {key!r}, which task {task!r} does not give (it gives {sorted(spaces)})")
        if tuple(spaces[key].shape) != shape:
            raise SimError(f"the policy expects {key} of shape {shape}; task {task!r} gives {spaces[key].shape}")
    action = config.output_features.get("action")
    if action is not None and tuple(action.shape) != tuple(env.action_space.shape):
        raise SimError(
            f"the policy outputs actions of shape {tuple(action.shape)}; task {task!r} takes {env.action_space.shape}"
        )


def _env_kwargs_for(policy: Any, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Render only for policies that look at images (ALOHA's 480x640 frame costs ~45 ms on llvmpipe), at
    the size the policy was trained on unless the caller says otherwise; videos render on their own."""
    kwargs = dict(env_kwargs or {})
    inputs = getattr(getattr(policy, "config", None), "input_features", None) or {}
    cameras = [ft for ft in inputs.values() if ft.type == "VISUAL"]
    kwargs.setdefault("render", bool(cameras))
    if cameras and len(cameras[0].shape) == 3:
        kwargs.setdefault("image_height", int(cameras[0].shape[1]))
        kwargs.setdefault("image_width", int(cameras[0].shape[2]))
    return kwargs


def _write_video(out_dir: Path, result: EpisodeResult, frames: list[np.ndarray], fps: int) -> Path:
    from apprentice.dataset.video import EpisodeEncoder

    path = out_dir / "videos" / f"eval_episode_{result.episode_ix}.mp4"
    encoder = EpisodeEncoder(path, fps=fps, vcodec="h264", crf=23)
    for frame in frames:
        encoder.put(frame)
    encoder.finish()
    return path


def write_eval_info(output_dir: str | Path, info: dict) -> Path:
    """Write `output_dir`/eval_info.json atomically (a reader never sees half a file)."""
    path = Path(output_dir) / "eval_info.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, path)
    return path


def action_mse(policy: Any, dataset_root: str | Path, episodes: list[int] | None = None, batch_size: int = 64) -> float:
    """Mean squared error of the policy's next action against a dataset's recorded actions (held-out split).

    Uses `predict_action_chunk` (no action queue), so each frame is judged on its own observation.
    """
    import torch

    from apprentice.dataset import LeRobotDataset

    ds = LeRobotDataset(dataset_root, episodes=episodes)
    if len(ds) == 0:
        raise SimError(f"{dataset_root}: no frames in episodes {episodes}; choose held-out episodes that exist")
    keys = list(policy.config.input_features)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ds), batch_size):
            items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
            obs = {k: torch.stack([it[k] for it in items]).to(policy.device) for k in keys}
            obs["task"] = [it["task"] for it in items]
            predicted = policy.predict_action_chunk(obs)[:, 0].float().cpu()
            target = torch.stack([it["action"] for it in items]).float()
            total += float(((predicted - target) ** 2).sum())
            count += target.numel()
    return total / count
