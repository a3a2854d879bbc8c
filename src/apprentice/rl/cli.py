"""`apprentice train --policy.type=hilserl …` (and `--policy.type=sac --online_training=true`): the flags of
the in-process HIL-SERL run, mapped onto `HILSerlConfig`."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from apprentice.rl.hilserl import HILSerlConfig, train_hilserl
from apprentice.rl.replay import ReplayError

USAGE = """usage: apprentice train --policy.type=hilserl --online_training=true --env.type=gym_hil [--flag=value ...]

--dataset.root=DIR | --dataset.repo_id=ID  demos (LeRobotDataset with next.reward/next.done); without: --num_demos
--env.type=gym_hil --env.task=PandaPickCube-v0 --env.obs_type={environment_state_agent_pos,pixels_agent_pos}
--env.random_block_position --env.max_episode_steps  --online_steps (env steps) --batch_size --offline_fraction
--interventions (scripted operator on gym-hil; default true for hilserl, false for sac) --intervention_patience
--intervention_hold_steps --eval_freq --eval_episodes --save_freq --output_dir --resume --seed --device
--policy.<any SAC field> (utd_ratio, num_discrete_actions, critic_target_update_weight, …)
"""

_ENV_TASKS = {"PandaPickCube-v0": "gym_hil_pick_cube", "PandaPickCubeBase-v0": "gym_hil_pick_cube_base",
              "PandaPickCubeGamepad-v0": "gym_hil_pick_cube_gamepad",
              "PandaPickCubeKeyboard-v0": "gym_hil_pick_cube_keyboard"}
_RENAMES = {"dataset.root": "dataset_root", "dataset.repo_id": "dataset_root", "env.obs_type": "obs_type",
            "env.random_block_position": "random_block_position", "env.max_episode_steps": "max_episode_steps",
            "policy.device": "device", "policy.online_steps": "online_steps"}


def _value(raw: str, like: Any) -> Any:
    if isinstance(like, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ReplayError(f"expected true/false, got {raw!r}")
        return raw.lower() in ("true", "1")
    if isinstance(like, int) and not isinstance(like, bool):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    return raw


def parse(args: Sequence[str]) -> HILSerlConfig:
    flags: dict[str, str] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ReplayError(f"flag {arg!r} is not --name=value")
        key, raw = arg[2:].split("=", 1)
        flags[key] = raw
    kind = flags.pop("policy.type")
    online = flags.pop("online_training", "true")
    if online.lower() not in ("true", "1"):
        raise ReplayError(f"--policy.type={kind} trains online; pass --online_training=true (got {online!r})")
    env_type = flags.pop("env.type", "gym_hil")
    if env_type != "gym_hil":
        raise ReplayError(f"--env.type={env_type}: the in-process HIL-SERL loop runs gym_hil (PandaPickCube)")
    fields: dict[str, Any] = {"interventions": kind == "hilserl"}
    task = flags.pop("env.task", "PandaPickCube-v0")
    if task not in _ENV_TASKS:
        raise ReplayError(f"--env.task={task}: choose one of {sorted(_ENV_TASKS)}")
    fields["env_task"] = _ENV_TASKS[task]
    defaults = HILSerlConfig()
    known = {f.name for f in dataclasses.fields(HILSerlConfig)} - {"policy", "env_task"}
    policy: dict[str, Any] = {}
    for key, raw in flags.items():
        name = _RENAMES.get(key, key)
        if name in known:
            fields[name] = raw if name == "dataset_root" else _value(raw, getattr(defaults, name))
        elif key.startswith("policy."):
            try:
                policy[key[len("policy."):]] = json.loads(raw)
            except json.JSONDecodeError:
                policy[key[len("policy."):]] = raw
        else:
            raise ReplayError(f"unknown flag --{key}; see `apprentice train --policy.type=hilserl --help`")
    fields["policy"] = policy
    return HILSerlConfig(**fields)


def wants_online_rl(args: Sequence[str]) -> bool:
    """`--policy.type=hilserl`, or `--policy.type=sac` with `--online_training=true`."""
    if "--policy.type=hilserl" in args:
        return True
    return "--policy.type=sac" in args and any(a.lower() in ("--online_training=true", "--online_training=1")
                                              for a in args)


def main(args: Sequence[str]) -> int:
    if "--help" in args or "-h" in args:
        print(USAGE)
        return 0
    try:
        path = train_hilserl(parse(args))
    except ReplayError as exc:
        print(f"apprentice train: error: {exc}", file=sys.stderr)
        return 2
    print(f"checkpoint: {path}")
    return 0
