"""Simulated tasks (MuJoCo; the real benchmark packages, e.g. gym-pusht), their privileged scripted experts, and
policy evaluation.

No ROS here: `apprentice.nodes.sim_node` puts these envs behind a real arm's topics.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from apprentice.sim.base import MujocoTask, SimError
from apprentice.sim.metaworld_tasks import DIFFICULTY_TO_TASKS, TASK_DESCRIPTIONS

LIBERO_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")

_HIL_EXPERT = "apprentice.sim.benchmarks.hil:PandaPickCubeExpert"
_METAWORLD_EXPERT = "apprentice.sim.benchmarks.metaworld:MetaworldExpert"
_LIBERO_EXPERT = "apprentice.sim.benchmarks.libero:LiberoExpertUnavailable"
# task name -> (env class, expert class) as "module:attribute": imported on first use, so `reach` never
# pays for pymunk and `import apprentice.sim` stays light for the ROS nodes.
TASKS: dict[str, tuple[str, str]] = {
    "reach": ("apprentice.sim.reach:ReachEnv", "apprentice.sim.reach:ReachExpert"),
    # reach with a red and a blue target; the per-episode instruction (the task) names the one to touch
    "reach_color": ("apprentice.sim.reach_color:ReachColorEnv", "apprentice.sim.reach_color:ReachColorExpert"),
    # gym-aloha (the real package): AlohaTransferCube-v0 / AlohaInsertion-v0
    "aloha_transfer_cube": (
        "apprentice.sim.benchmarks.aloha:AlohaTransferCubeEnv",
        "apprentice.sim.benchmarks.aloha_expert:TransferCubeExpert",
    ),
    "aloha_insertion": (
        "apprentice.sim.benchmarks.aloha:AlohaInsertionEnv",
        "apprentice.sim.benchmarks.aloha_expert:InsertionExpert",
    ),
    # gym-pusht's PushT-v0 (pip install 'apprentice[sim]')
    "pusht": ("apprentice.sim.benchmarks.pusht:PushTEnv", "apprentice.sim.benchmarks.pusht_expert:PushTExpert"),
    # gym-xarm, gym-hil, metaworld, hf-libero (extras xarm, hil, metaworld, libero)
    "xarm_lift": ("apprentice.sim.benchmarks.xarm:XarmLiftEnv", "apprentice.sim.benchmarks.xarm:XarmLiftExpert"),
    **{
        f"gym_hil_pick_cube{suffix}": (f"apprentice.sim.benchmarks.hil:PandaPickCube{cls}Env", _HIL_EXPERT)
        for suffix, cls in (("", ""), ("_base", "Base"), ("_gamepad", "Gamepad"), ("_keyboard", "Keyboard"))
    },
    **{
        f"metaworld_{name}": (f"apprentice.sim.benchmarks.metaworld:MetaworldEnv[{name}]", _METAWORLD_EXPERT)
        for name in sorted(TASK_DESCRIPTIONS)
    },
    # one env that plays a difficulty group's tasks in turn (task seed % n): a multi-task recording
    **{
        f"metaworld_{group}_mixed": (f"apprentice.sim.benchmarks.metaworld:MetaworldEnv[{group}]", _METAWORLD_EXPERT)
        for group in DIFFICULTY_TO_TASKS
    },
    **{
        # one task of a LIBERO suite, chosen by make_env's task_id; the suite itself is in SUITES
        f"{suite}_task": (f"apprentice.sim.benchmarks.libero:LiberoEnv[{suite}]", _LIBERO_EXPERT)
        for suite in LIBERO_SUITES
    },
}

# suite name -> its tasks, for multi-task evaluation (LIBERO's suites, Meta-World's difficulty groups):
# a list whose items are TASKS names or (TASKS name, make_env kwargs), or "module:function" returning
# that list on first use (a suite read from a benchmark's own files costs nothing until evaluated).
def _libero_suite(suite: str) -> list[tuple[str, dict[str, Any]]]:
    return importlib.import_module("apprentice.sim.benchmarks.libero").suite_members(suite)


SUITES: dict[str, list[str | tuple[str, dict[str, Any]]] | str | Callable[[], list]] = {
    # Meta-World's MT50 difficulty groups, as lerobot reports them
    **{f"metaworld_{group}": [f"metaworld_{t}" for t in tasks] for group, tasks in DIFFICULTY_TO_TASKS.items()},
    # LIBERO's suites: their task lists come from hf-libero's bddl files, read when first evaluated
    **{suite: functools.partial(_libero_suite, suite) for suite in LIBERO_SUITES},
}


def _resolve(name: str, index: int) -> Any:
    if name not in TASKS:
        raise SimError(f"unknown sim task {name!r}; choose one of {sorted(TASKS)}")
    module, attribute = TASKS[name][index].split(":")
    return getattr(importlib.import_module(module), attribute)


def suite_tasks(name: str) -> list[tuple[str, dict[str, Any]]]:
    """The (task, env kwargs) pairs of suite `name`, in the suite's order."""
    if name not in SUITES:
        raise SimError(f"unknown sim suite {name!r}; choose one of {sorted(SUITES)}")
    members = SUITES[name]
    if isinstance(members, str):
        module, attribute = members.split(":")
        members = getattr(importlib.import_module(module), attribute)()
    elif callable(members):
        members = members()
    tasks = [(m, {}) if isinstance(m, str) else (m[0], dict(m[1])) for m in members]
    unknown = sorted({t for t, _ in tasks if t not in TASKS})
    if unknown or not tasks:
        raise SimError(f"sim suite {name!r} names no task or unknown tasks {unknown}; known: {sorted(TASKS)}")
    return tasks


def make_env(name: str, seed: int | None = 0, render: bool = True, **kwargs: Any) -> Any:
    """A gymnasium env for task `name` (a key of TASKS)."""
    try:
        env = _resolve(name, 0)(seed=seed, render=render, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        # e.g. --env.obs_type given for a task that has one observation layout
        raise SimError(f"sim task {name!r} does not take that option ({exc}); drop the --env.* flag") from exc
    env.name = name
    return env


def make_expert(env: Any, **kwargs: Any) -> Any:
    """The task's privileged scripted expert: `expert.reset(obs)` then `expert.act(obs)` each step."""
    name = getattr(env, "name", None)
    if name is None:
        raise SimError("make_expert needs an env built by apprentice.sim.make_env")
    return _resolve(name, 1)(env, **kwargs)


__all__ = ["SUITES", "TASKS", "MujocoTask", "SimError", "make_env", "make_expert", "suite_tasks"]
