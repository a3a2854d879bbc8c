"""Simulated tasks (MuJoCo, pymunk), their privileged scripted experts, and policy evaluation.

No ROS here: `apprentice.nodes.sim_node` puts these envs behind a real arm's topics.
"""

from __future__ import annotations

from typing import Any

from apprentice.sim.base import MujocoTask, SimError
from apprentice.sim.metaworld_tasks import DIFFICULTY_TO_TASKS, TASK_DESCRIPTIONS

_HIL_EXPERT = "apprentice.sim.benchmarks.hil:PandaPickCubeExpert"
_METAWORLD_EXPERT = "apprentice.sim.benchmarks.metaworld:MetaworldExpert"
_LIBERO_EXPERT = "apprentice.sim.benchmarks.libero:LiberoExpertUnavailable"
# task name -> (env class, expert class) as "module:attribute": imported on first use, so `reach` never
# pays for pymunk and `import apprentice.sim` stays light for the ROS nodes.
TASKS: dict[str, tuple[str, str]] = {
    "reach": ("apprentice.sim.reach:ReachEnv", "apprentice.sim.reach:ReachExpert"),
    "aloha_transfer_cube": (
        "apprentice.sim.aloha:AlohaTransferCubeEnv",
        "apprentice.sim.aloha:AlohaTransferCubeExpert",
    ),
    "aloha_insertion": (
        "apprentice.sim.aloha_insertion:AlohaInsertionEnv",
        "apprentice.sim.aloha_insertion:AlohaInsertionExpert",
    ),
    "pusht": ("apprentice.sim.pusht:PushTEnv", "apprentice.sim.pusht_expert:PushTExpert"),
    # gym-xarm, gym-hil, metaworld, hf-libero (extras xarm, hil, metaworld, libero)
    "xarm_lift": ("apprentice.sim.benchmarks.xarm:XarmLiftEnv", "apprentice.sim.benchmarks.xarm:XarmLiftExpert"),
    **{
        f"gym_hil_pick_cube{suffix}": (f"apprentice.sim.benchmarks.hil:PandaPickCube{cls}Env", _HIL_EXPERT)
        for suffix, cls in (("", ""), ("_base", "Base"), ("_gamepad", "Gamepad"), ("_keyboard", "Keyboard"))
    },
    **{
        f"metaworld_{name}": (f"apprentice.sim.benchmarks.metaworld:MetaworldEnv[{name}]", _METAWORLD_EXPERT)
        for name in [*DIFFICULTY_TO_TASKS, *sorted(TASK_DESCRIPTIONS)]
    },
    **{
        suite: (f"apprentice.sim.benchmarks.libero:LiberoEnv[{suite}]", _LIBERO_EXPERT)
        for suite in ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
    },
}


def _resolve(name: str, index: int) -> Any:
    import importlib

    if name not in TASKS:
        raise SimError(f"unknown sim task {name!r}; choose one of {sorted(TASKS)}")
    module, attribute = TASKS[name][index].split(":")
    return getattr(importlib.import_module(module), attribute)


def make_env(name: str, seed: int | None = 0, render: bool = True, **kwargs: Any) -> Any:
    """A gymnasium-style env for task `name` ("reach" | "aloha_transfer_cube" | "pusht")."""
    env = _resolve(name, 0)(seed=seed, render=render, **kwargs)
    env.name = name
    return env


def make_expert(env: Any, **kwargs: Any) -> Any:
    """The task's privileged scripted expert: `expert.reset(obs)` then `expert.act(obs)` each step."""
    name = getattr(env, "name", None)
    if name is None:
        raise SimError("make_expert needs an env built by apprentice.sim.make_env")
    return _resolve(name, 1)(env, **kwargs)


__all__ = ["TASKS", "MujocoTask", "SimError", "make_env", "make_expert"]
