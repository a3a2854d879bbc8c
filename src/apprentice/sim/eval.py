"""Policy evaluation in simulation, as lerobot-eval: vectorised seeded rollouts per task → eval_info.json.

`evaluate` runs `n_episodes` episodes of every task (a task, a list of tasks, or a suite such as a LIBERO
suite or a Meta-World difficulty group) in batches of `batch_size` envs stepped together, and aggregates
per task, per task group and overall in LeRobot's layout (`apprentice.sim.eval_info`). Episode i of
every task uses env seed `seed + i` whatever the batch size: each episode runs in its own slot of the
vector env, and an ended episode never leaks into the next (`apprentice.sim.vector`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apprentice.eval_info import build_eval_info, task_metrics, write_eval_info
from apprentice.sim import SUITES, TASKS, SimError, suite_tasks
from apprentice.sim.vector import ROLLOUT_OPTION, auto_batch_size, make_vector_env

# Eval seeds start far from the recording seeds (0, 1, ...) so evaluation episodes are held out.
DEFAULT_EVAL_SEED = 100_000


@dataclass
class EvalTask:
    """One task of an evaluation: LeRobot's (task_group, task_id), the TASKS name and its env kwargs."""

    group: str
    task_id: int
    name: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    """lerobot-eval's `--eval.*` options (batch_size 0: one env per ~1.4 cores, as LeRobot's auto)."""

    n_episodes: int = 50  # per task
    batch_size: int = 10  # envs stepped together, one batched policy call per step
    use_async_envs: bool = False  # AsyncVectorEnv: one worker process per env
    max_episodes_rendered: int = 10  # per task, with an output_dir

    def __post_init__(self) -> None:
        if self.n_episodes < 1:
            raise SimError(f"--eval.n_episodes must be >= 1, got {self.n_episodes}")
        if self.batch_size < 0:
            raise SimError(f"--eval.batch_size must be >= 1 (or 0 for automatic), got {self.batch_size}")
        if self.max_episodes_rendered < 0:
            raise SimError(f"--eval.max_episodes_rendered must be >= 0, got {self.max_episodes_rendered}")
        self.batch_size = min(self.batch_size or auto_batch_size(self.n_episodes), self.n_episodes)


class ExpertPolicy:
    """The task's scripted expert in each env slot (a baseline); build it with the vector env: `ExpertPolicy(vec)`.

    The experts read the simulator's privileged state, so they run where each env lives (in its worker
    process with AsyncVectorEnv), reached through `VectorEnv.call`.
    """

    def __init__(self, envs: Any) -> None:
        self.envs = envs
        self._fresh = True

    def reset(self) -> None:
        self._fresh = True

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        if self._fresh:
            self.envs.call("expert_reset")
            self._fresh = False
        return np.stack(self.envs.call("expert_action"))


class ZeroPolicy:
    """Commands all-zero actions: the floor any learned policy must beat."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    @classmethod
    def for_envs(cls, envs: Any) -> ZeroPolicy:
        """A policy factory for `evaluate`: zeros of each task's own action size."""
        return cls(envs.single_action_space.shape[0])

    def reset(self) -> None:
        pass

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        return np.zeros((len(obs["task"]), self.action_dim), dtype=np.float32)


def eval_tasks(tasks: str | EvalTask | Sequence[str | EvalTask]) -> list[EvalTask]:
    """EvalTasks for registry names (a TASKS task: group = its name, task_id 0; a SUITES suite: group =
    the suite, task_id = position in it) or EvalTasks as they are."""
    items = [tasks] if isinstance(tasks, str | EvalTask) else list(tasks)
    out: list[EvalTask] = []
    for item in items:
        if isinstance(item, EvalTask):
            out.append(item)
        elif item in SUITES:
            out += [EvalTask(item, i, name, kwargs) for i, (name, kwargs) in enumerate(suite_tasks(item))]
        elif item in TASKS:
            out.append(EvalTask(item, 0, item))
        else:
            raise SimError(f"unknown sim task or suite {item!r}; tasks: {sorted(TASKS)}; suites: {sorted(SUITES)}")
    seen = [(t.group, t.task_id) for t in out]
    twice = sorted({f"{g}_{i}" for g, i in seen if seen.count((g, i)) > 1})
    if twice:
        raise SimError(f"the evaluation names task {twice[0]!r} twice; list each task or suite once")
    if not out:
        raise SimError("no task to evaluate; name a task or a suite")
    return out


def _batch(obs: dict[str, np.ndarray], tasks: list[str], as_torch: bool, device: Any) -> dict[str, Any]:
    """A vector env's observations the way the dataset gives them: camera frames (B, 3, H, W) float in [0, 1]."""
    batch: dict[str, Any] = {}
    for key, value in obs.items():
        value = np.asarray(value)
        if value.dtype == np.uint8 and value.ndim == 4:  # (B, H, W, C) frames, whatever the camera key
            value = value.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        batch[key] = value.astype(np.float32)
    if as_torch:
        import torch

        batch = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
    batch["task"] = list(tasks)
    return batch


def env_tasks(envs: Any) -> list[str]:
    """Each slot's instruction for the episode just reset, as lerobot-eval adds it to the observation (the
    env's `task_description`, else its `task`; `EvalSlot.instruction`). Read after every reset: envs such
    as reach_color draw a new instruction per episode."""
    return [str(v) for v in envs.call("instruction")]


def _to_numpy(action: Any) -> np.ndarray:
    if hasattr(action, "detach"):
        action = action.detach().to("cpu").float().numpy()
    return np.asarray(action, dtype=np.float32)


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    sum_reward: float
    max_reward: float
    length: int


def rollout(
    envs: Any, policy: Any, seeds: Sequence[int], n_live: int, video_paths: Sequence[Path] = ()
) -> list[EpisodeResult]:
    """One episode in each of the first `n_live` slots of vector env `envs`, slot j seeded `seeds[j]`.

    The policy always sees the full batch (a spare slot of a short last batch holds still). An episode's
    numbers are its own steps up to its termination or truncation; success is sticky (any step's
    `info["is_success"]`, as LeRobot). `video_paths[j]` records slot j. Policies with a `device` (every
    learned policy) get torch tensors there; others (experts, baselines) get numpy.
    """
    n = envs.num_envs
    if len(seeds) != n or not 1 <= n_live <= n:
        raise SimError(f"rollout needs {n} seeds and 1..{n} live slots, got {len(seeds)} and {n_live}")
    plan = {"live": n_live, "videos": {j: str(p) for j, p in enumerate(video_paths)}}
    obs, _ = envs.reset(seed=[int(s) for s in seeds], options={ROLLOUT_OPTION: plan})
    policy.reset()
    tasks = env_tasks(envs)
    max_steps = max(int(m) for m in envs.get_attr("max_episode_steps"))
    as_torch, device = hasattr(policy, "device"), getattr(policy, "device", "cpu")
    done = np.arange(n) >= n_live
    success = np.zeros(n, dtype=bool)
    sums = np.zeros(n)
    maxes = np.full(n, -np.inf)
    lengths = np.zeros(n, dtype=int)
    for _ in range(max_steps):  # every env truncates by then: the bound only guards a broken env
        if done.all():
            break
        actions = _to_numpy(policy.select_action(_batch(obs, tasks, as_torch, device)))
        if actions.ndim != 2 or actions.shape[0] != n:
            raise SimError(f"the policy returned actions of shape {actions.shape} for a batch of {n} observations")
        obs, reward, terminated, truncated, info = envs.step(actions)
        live = ~done
        sums[live] += reward[live]
        maxes[live] = np.maximum(maxes[live], reward[live])
        lengths[live] += 1
        success[live] |= np.asarray(info.get("is_success", np.zeros(n, dtype=bool)), dtype=bool)[live]
        done |= np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
    envs.call("finish_video")
    return [
        EpisodeResult(int(seeds[j]), bool(success[j]), float(sums[j]), float(maxes[j]), int(lengths[j]))
        for j in range(n_live)
    ]


def evaluate(
    policy: Any | Callable[[Any], Any],
    tasks: str | EvalTask | Sequence[str | EvalTask],
    n_episodes: int = 50,
    batch_size: int = 10,
    seed: int = DEFAULT_EVAL_SEED,
    output_dir: str | Path | None = None,
    max_episodes_rendered: int = 10,
    env_kwargs: dict[str, Any] | None = None,
    use_async_envs: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate `policy` (or a factory `vector env -> policy`, e.g. ExpertPolicy) on `n_episodes` seeded
    episodes of each task; returns (and with `output_dir` writes) LeRobot's eval_info dict.

    `tasks`: TASKS/SUITES names or EvalTasks (`eval_tasks`). With `output_dir`, the first
    `max_episodes_rendered` episodes of each task are written to
    `videos/<task_group>_<task_id>/eval_episode_<i>.mp4`, as lerobot-eval names them.
    """
    config = EvalConfig(n_episodes, batch_size, use_async_envs, max_episodes_rendered)
    todo = eval_tasks(tasks)
    started = time.perf_counter()
    per_task = []
    for task in todo:
        metrics = _evaluate_task(policy, task, config, seed, output_dir, env_kwargs, log)
        per_task.append({"task_group": task.group, "task_id": task.task_id, "metrics": metrics})
    info = build_eval_info(per_task, time.perf_counter() - started, seed)
    if output_dir is not None:
        write_eval_info(output_dir, info)
    return info


def _evaluate_task(
    policy: Any,
    task: EvalTask,
    config: EvalConfig,
    seed: int,
    output_dir: str | Path | None,
    env_kwargs: dict[str, Any] | None,
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    kwargs = {**_env_kwargs_for(policy, env_kwargs), **task.env_kwargs}
    envs = make_vector_env(task.name, config.batch_size, kwargs, config.use_async_envs)
    results: list[EpisodeResult] = []
    videos: list[Path] = []
    try:
        task_policy = policy(envs) if isinstance(policy, type) or not hasattr(policy, "select_action") else policy
        _check_policy_fits(task_policy, envs, task.name)
        for start in range(0, config.n_episodes, config.batch_size):
            n_live = min(config.batch_size, config.n_episodes - start)
            seeds = [seed + start + j for j in range(config.batch_size)]  # spare slots too, as LeRobot
            rendered = []
            if output_dir is not None:
                videos_dir = Path(output_dir) / "videos" / f"{task.group}_{task.task_id}"
                last = min(start + n_live, config.max_episodes_rendered)
                rendered = [videos_dir / f"eval_episode_{i}.mp4" for i in range(start, last)]
            results += rollout(envs, task_policy, seeds, n_live, rendered)
            videos += rendered
            if log is not None:
                rate = np.mean([r.success for r in results])
                log(f"{task.group}_{task.task_id} ({task.name}): {len(results)}/{config.n_episodes} episodes, "
                    f"success so far {rate:.0%}")
    finally:
        envs.close()
    return task_metrics(
        task.name,
        [r.seed for r in results],
        [r.success for r in results],
        [r.sum_reward for r in results],
        [r.max_reward for r in results],
        [r.length for r in results],
        [str(p) for p in videos],
    )


def _check_policy_fits(policy: Any, envs: Any, task: str) -> None:
    """A policy trained for another robot or camera size fails here, by name, not deep inside torch."""
    config = getattr(policy, "config", None)
    if config is None:
        return
    spaces = envs.single_observation_space.spaces
    for key, ft in config.input_features.items():
        shape = tuple(ft.shape)
        if key not in spaces:
            raise SimError(f"the policy needs {key!r}, which task {task!r} does not give (it gives {sorted(spaces)})")
        if len(shape) == 3 and spaces[key].dtype == np.uint8:
            shape = (shape[1], shape[2], shape[0])  # policies see (C, H, W), envs give (H, W, C)
        if tuple(spaces[key].shape) != shape:
            raise SimError(f"the policy expects {key} of shape {shape}; task {task!r} gives {spaces[key].shape}")
    action = config.output_features.get("action")
    single_action = tuple(envs.single_action_space.shape)
    if action is not None and tuple(action.shape) != single_action:
        raise SimError(
            f"the policy outputs actions of shape {tuple(action.shape)}; task {task!r} takes {single_action}"
        )


def _env_kwargs_for(policy: Any, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Render only for policies that look at images (ALOHA's 480x640 frame costs ~45 ms on llvmpipe), at
    the size the policy was trained on unless the caller says otherwise; videos render on their own."""
    kwargs = dict(env_kwargs or {})
    inputs = getattr(getattr(policy, "config", None), "input_features", None) or {}
    cameras = [ft for key, ft in inputs.items() if key.startswith("observation.image")]
    kwargs.setdefault("render", bool(cameras))
    if cameras and len(cameras[0].shape) == 3:
        kwargs.setdefault("image_height", int(cameras[0].shape[1]))
        kwargs.setdefault("image_width", int(cameras[0].shape[2]))
    return kwargs


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


__all__ = [
    "DEFAULT_EVAL_SEED",
    "EvalConfig",
    "EvalTask",
    "ExpertPolicy",
    "ZeroPolicy",
    "action_mse",
    "env_tasks",
    "eval_tasks",
    "evaluate",
    "rollout",
    "write_eval_info",
]
