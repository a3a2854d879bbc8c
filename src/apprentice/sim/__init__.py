"""Simulated tasks (MuJoCo, pymunk), their privileged scripted experts, and policy evaluation.

No ROS here: `apprentice.nodes.sim_node` puts these envs behind a real arm's topics.
"""

from __future__ import annotations

from typing import Any

from apprentice.sim.base import MujocoTask, SimError

# task name -> (env class, expert class) as "module:attribute": imported on first use, so `reach` never
# pays for pymunk and `import apprentice.sim` stays light for the ROS nodes.
TASKS: dict[str, tuple[str, str]] = {
    "reach": ("apprentice.sim.reach:ReachEnv", "apprentice.sim.reach:ReachExpert"),
    # gym-aloha (the real package): AlohaTransferCube-v0 / AlohaInsertion-v0
    "aloha_transfer_cube": (
        "apprentice.sim.benchmarks.aloha:AlohaTransferCubeEnv",
        "apprentice.sim.benchmarks.aloha_expert:TransferCubeExpert",
    ),
    "aloha_insertion": (
        "apprentice.sim.benchmarks.aloha:AlohaInsertionEnv",
        "apprentice.sim.benchmarks.aloha_expert:InsertionExpert",
    ),
    "pusht": ("apprentice.sim.pusht:PushTEnv", "apprentice.sim.pusht_expert:PushTExpert"),
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
