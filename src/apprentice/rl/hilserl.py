"""HIL-SERL in one process (`apprentice train --policy.type=hilserl …`): SAC from a few demonstrations,
online on the env with an operator who takes over when the policy drifts.

Each env step: the policy samples an action, the operator may replace it (`InterventionSource`), the
executed action is stored with its `complementary_info.is_intervention` flag; once
`online_step_before_learning` steps are in, one SAC update per env step on `utd_ratio` RLPD batches
(half demos, half online). Every `eval_freq` env steps the deterministic policy is scored on
`eval_episodes` seeded episodes without interventions (`--eval_workers=N`: in N worker processes while
training goes on). Checkpoints hold the replay buffers, so a killed run continues with `--resume=true`.
`--budget_s` stops training at a wall budget; the final eval (`--final_eval_episodes`) still runs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apprentice.policies import load_policy, make_config, make_policy
from apprentice.policies.sac import SACAlgorithm
from apprentice.rl import hil_checkpoint
from apprentice.rl.demos import buffer_from_dataset, scripted_demos, write_buffer_dataset
from apprentice.rl.episode import run_episode
from apprentice.rl.eval_pool import EvalPool, PendingEval
from apprentice.rl.hil_checkpoint import PRETRAINED, load_hil_checkpoint
from apprentice.rl.intervention import ScriptedHuman
from apprentice.rl.replay import ReplayBuffer, ReplayError
from apprentice.rl.transitions import mixed_batch

log = logging.getLogger("apprentice.hilserl")
EVAL_SEED = 100_000  # evaluation seeds never overlap training episodes


@dataclass
class HILSerlConfig:
    """Every option of the in-process run; flags `--<name>=value`, policy fields `--policy.<field>`."""

    output_dir: str = "outputs/hilserl"
    env_task: str = "gym_hil_pick_cube"  # --env.type=gym_hil maps here
    obs_type: str = "environment_state_agent_pos"  # or pixels_agent_pos (cameras)
    random_block_position: bool = True
    max_episode_steps: int = 100
    dataset_root: str | None = None  # demos with next.reward/next.done; None: `num_demos` scripted ones
    num_demos: int = 10
    online_steps: int = 20_000  # env steps
    batch_size: int = 256
    offline_fraction: float = 0.5  # RLPD: half of every batch from the demos
    interventions: bool = True
    intervention_patience: int = 4
    intervention_hold_steps: int = 8
    eval_freq: int = 2_000
    eval_episodes: int = 50
    final_eval_episodes: int = 0  # the last evaluation's episodes; 0: eval_episodes
    eval_workers: int = 0  # > 0: evaluations run in that many worker processes while training goes on
    budget_s: float = 0.0  # > 0: no new training episode starts this many wall seconds after the call (demos in)
    save_freq: int = 5_000
    checkpoints: bool = True  # false: no checkpoint (weights + replay buffers) is written (benchmarks)
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    record_dataset: str | None = None  # also write the online episodes here as a LeRobotDataset (flags kept)
    policy: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.online_steps >= 0, f"--online_steps must be >= 0 (got {self.online_steps})"),
            (self.batch_size >= 2, f"--batch_size must be >= 2 (got {self.batch_size})"),
            (0.0 <= self.offline_fraction <= 1.0,
             f"--offline_fraction must be in [0, 1] (got {self.offline_fraction})"),
            (self.dataset_root is not None or self.num_demos >= 0, "--num_demos must be >= 0"),
            (self.eval_freq >= 1 and self.save_freq >= 1, "--eval_freq and --save_freq must be >= 1"),
            (self.eval_workers >= 0 and self.final_eval_episodes >= 0 and self.budget_s >= 0,
             "--eval_workers, --final_eval_episodes and --budget_s must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ReplayError(message)


# SAC settings that fit PandaPickCube (lerobot's gym_hil example: discrete gripper, utd 2, small critics).
PICKCUBE_POLICY: dict[str, Any] = {
    "num_discrete_actions": 3,
    "utd_ratio": 2,
    "discount": 0.97,
    "temperature_init": 0.01,
    "latent_dim": 64,
    "actor_network_kwargs": {"hidden_dims": [256, 256]},
    "critic_network_kwargs": {"hidden_dims": [256, 256]},
    "online_step_before_learning": 200,
}


def make_hil_env(cfg: HILSerlConfig) -> Any:
    from apprentice.sim import make_env

    pixels = cfg.obs_type == "pixels_agent_pos"
    return make_env(cfg.env_task, seed=cfg.seed, render=pixels, obs_type=cfg.obs_type,
                    random_block_position=cfg.random_block_position, max_episode_steps=cfg.max_episode_steps)


def _stats(env: Any, demos: ReplayBuffer, continuous_dims: int | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """MIN_MAX state stats from the demos (widened a little: online states go further), ImageNet for
    cameras, and the env's action bounds for the actions (so the actor can reach all of them)."""
    stats: dict[str, dict[str, torch.Tensor]] = {}
    for key in env.observation_space.spaces:
        if key.startswith("observation.images."):
            stats[key] = {"mean": torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1),
                          "std": torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1)}
        else:
            x = torch.from_numpy(demos.data[key]).float()
            lo, hi = x.min(0).values, x.max(0).values
            pad = 0.1 * (hi - lo) + 1e-3
            stats[key] = {"min": lo - pad, "max": hi + pad}
    dims = continuous_dims or env.action_space.shape[0]
    low = torch.as_tensor(env.action_space.low[:dims], dtype=torch.float32)
    high = torch.as_tensor(env.action_space.high[:dims], dtype=torch.float32)
    stats["action"] = {"min": low, "max": high}
    return stats


def _new_algorithm(cfg: HILSerlConfig, env: Any, demos: ReplayBuffer) -> SACAlgorithm:
    from apprentice.policies import features_from_dataset

    inputs, _ = features_from_dataset(env.features)
    fields = {**PICKCUBE_POLICY, **cfg.policy, "device": cfg.device}
    fields.setdefault("input_features", {k: {"type": f.type, "shape": list(f.shape)} for k, f in inputs.items()})
    # As lerobot: with a discrete gripper the `action` feature is the continuous part (the last env dim is
    # the gripper index the discrete critic picks).
    dims = env.action_space.shape[0] - (1 if fields.get("num_discrete_actions") else 0)
    fields.setdefault("output_features", {"action": {"type": "ACTION", "shape": [dims]}})
    policy = make_policy(make_config("sac", **fields), _stats(env, demos, dims))
    return SACAlgorithm(policy, cfg.device)


def evaluate(algo: SACAlgorithm, env: Any, n: int, first_seed: int = EVAL_SEED) -> float:
    """Success rate of the deterministic policy over `n` seeded episodes, no interventions."""
    algo.policy.eval()
    try:
        wins = sum(run_episode(env, first_seed + i, act=algo.select_action)[2]["success"] for i in range(n))
    finally:
        algo.policy.train()
    return wins / max(n, 1)


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def _log_eval(out: Path, env_step: int, rate: float, episodes: int, wall_s: float) -> None:
    _append(out / "logs" / "eval.jsonl", {"env_step": env_step, "success_rate": rate, "episodes": episodes,
                                          "wall_s": wall_s})
    log.info("env step %d: eval success %.2f over %d episodes", env_step, rate, episodes)


def train_hilserl(cfg: HILSerlConfig) -> Path:
    """Run (or resume) HIL-SERL; returns the last checkpoint dir. Logs: logs/episodes.jsonl, logs/eval.jsonl."""
    t_call = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.output_dir)
    last = out / "checkpoints" / "last"
    if not cfg.resume and last.exists():
        raise ReplayError(f"{out} already holds checkpoints; pass --resume=true or choose another --output_dir")
    env = make_hil_env(cfg)
    obs_keys = list(env.observation_space.spaces)
    progress = {"env_step": 0, "episodes": 0, "next_eval": 0}
    if cfg.resume:
        if not last.exists():
            raise ReplayError(f"--resume=true but {last} does not exist; nothing to resume in {out}")
        policy = load_policy(last / PRETRAINED, device=cfg.device).train()
        algo = SACAlgorithm(policy, cfg.device)
        progress, online, offline = load_hil_checkpoint(last.resolve(), algo)
        rng = np.random.default_rng(cfg.seed + progress["env_step"])
        log.info("resumed at env step %d with %d online frames", progress["env_step"], len(online))
    else:
        if cfg.dataset_root:
            offline = buffer_from_dataset(cfg.dataset_root, obs_keys)
        else:
            offline, wins = scripted_demos(env, cfg.num_demos, first_seed=10_000 + cfg.seed)
            log.info("scripted demos: %d/%d succeeded", wins, cfg.num_demos)
        online = ReplayBuffer(None)
        algo = _new_algorithm(cfg, env, offline)
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    human = (ScriptedHuman(env, cfg.intervention_patience, cfg.intervention_hold_steps)
             if cfg.interventions else None)
    sac_cfg = algo.config
    train_config = {**dataclasses.asdict(cfg), "policy": sac_cfg.to_dict()}
    timing = {"update_s": 0.0, "updates": 0, "env_s": 0.0}
    last_ckpt = last

    def on_step() -> None:
        progress["env_step"] += 1
        if progress["env_step"] < sac_cfg.online_step_before_learning or not len(offline) + len(online):
            return
        t0 = time.perf_counter()
        # stats=False: nothing is read back from the device per update (the episode log reads the temperature).
        algo.update(mixed_batch(online, offline, cfg.batch_size * sac_cfg.utd_ratio, obs_keys, rng,
                                cfg.offline_fraction), stats=False)
        timing["update_s"] += time.perf_counter() - t0
        timing["updates"] += 1

    pool = EvalPool(functools.partial(make_hil_env, cfg), cfg.eval_workers) if cfg.eval_workers else None
    pending: list[PendingEval] = []

    def eval_point(n: int) -> None:
        """Score the policy now: in this process, or submitted to the pool (logged when it returns)."""
        wall = time.perf_counter() - t_start
        if pool is None:
            _log_eval(out, progress["env_step"], evaluate(algo, env, n), n, wall)
        else:
            pending.append(pool.submit(algo.policy, list(range(EVAL_SEED, EVAL_SEED + n)), progress["env_step"],
                                       wall))

    def drain(wait: bool) -> None:
        while pending and (wait or pending[0].done()):
            p = pending.pop(0)
            _log_eval(out, p.env_step, p.success_rate(), p.episodes, p.wall_s)

    t_start = time.perf_counter()
    try:
        while progress["env_step"] < cfg.online_steps:
            if cfg.budget_s and time.perf_counter() - t_call >= cfg.budget_s:
                log.info("wall budget %.0f s reached at env step %d", cfg.budget_s, progress["env_step"])
                break
            drain(wait=False)
            if progress["env_step"] >= progress["next_eval"]:
                if not pending:  # a pool still busy with the last point skips this one
                    eval_point(cfg.eval_episodes)
                progress["next_eval"] += cfg.eval_freq
            t0, u0 = time.perf_counter(), timing["update_s"]
            frames, has_action, stats = run_episode(env, cfg.seed + progress["episodes"], act=algo.select_action,
                                                    human=human, on_step=on_step)
            timing["env_s"] += time.perf_counter() - t0 - (timing["update_s"] - u0)
            online.add_episode(frames, has_action)
            progress["episodes"] += 1
            _append(out / "logs" / "episodes.jsonl", {
                "env_step": progress["env_step"], "episode": progress["episodes"], **stats,
                "intervention_rate": stats["interventions"] / max(stats["length"], 1),
                "online_buffer_size": len(online), "optimization_step": algo.optimization_step,
                "temperature": algo.policy.temperature, "wall_s": time.perf_counter() - t_start,
            })
            crossed = progress["env_step"] // cfg.save_freq > (progress["env_step"] - stats["length"]) // cfg.save_freq
            if cfg.checkpoints and crossed:
                last_ckpt = hil_checkpoint.save_hil_checkpoint(out, algo, progress, online, offline, train_config)
        train_wall = time.perf_counter() - t_start
        eval_point(cfg.final_eval_episodes or cfg.eval_episodes)
        drain(wait=True)
        if cfg.checkpoints:
            last_ckpt = hil_checkpoint.save_hil_checkpoint(out, algo, progress, online, offline, train_config)
        if cfg.record_dataset:
            write_buffer_dataset(online, cfg.record_dataset, env)
    finally:
        if pool is not None:
            pool.close()
        env.close()
    _append(out / "logs" / "throughput.jsonl", {
        "updates_per_s": timing["updates"] / max(timing["update_s"], 1e-9),
        "env_steps_per_s": progress["env_step"] / max(timing["env_s"], 1e-9),
        # the actor's control-loop rate while learning: env steps per wall second of the training loop
        "control_loop_hz": progress["env_step"] / max(train_wall, 1e-9), "env_steps": progress["env_step"],
        "train_wall_s": train_wall, **timing})
    return last_ckpt


def read_log(output_dir: str | Path, name: str) -> list[dict[str, Any]]:
    path = Path(output_dir) / "logs" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
