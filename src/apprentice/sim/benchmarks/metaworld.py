"""`--env.type=metaworld`: Meta-World MT1 tasks by name and lerobot's MT50 difficulty groups, with
Meta-World's own scripted policies as the expert.

Keys as lerobot's `metaworld` env wrapper makes them: `observation.image` 480x480 from the `corner2`
camera (moved as lerobot moves it, image flipped on both axes), `observation.state` = the first 4 values
of Meta-World's observation (hand xyz, gripper opening), `action` (4: dx, dy, dz, gripper in [-1, 1]);
80 fps, 500-step episodes (Meta-World's `max_path_length`, what lerobot's eval runs), the task text from
lerobot's table. `--env.task` takes a task (`push-v3`, or lerobot's `metaworld-push-v3`) or a group
(`easy`, `medium`, `hard`, `very_hard`): a group env plays the group's tasks in turn, task `seed % n` for
a seeded reset. Each task keeps MT1's first training task (seed 42), as lerobot does, and then draws the
object and goal positions from the env's seeded generator (lerobot's `seeded_rand_vec`), so a seed gives
one layout.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np

from apprentice.sim.base import SimError
from apprentice.sim.benchmarks.base import BenchmarkEnv, import_benchmark
from apprentice.sim.benchmarks.layout import close_at_exit, features, observation_space
from apprentice.sim.benchmarks.metaworld_experts import EXPERTS
from apprentice.sim.metaworld_tasks import DIFFICULTY_TO_TASKS, TASK_DESCRIPTIONS

MT50 = sorted(TASK_DESCRIPTIONS)
STATE_NAMES = ["hand.x", "hand.y", "hand.z", "gripper"]
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "gripper"]
_CORNER2_POS = (0.75, 0.075, 0.7)  # where lerobot puts corner2 (as in arXiv:2206.14244)


def task_names(task: str) -> list[str]:
    """The MT1 task names `--env.task` means: one task, or the tasks of a difficulty group."""
    name = task.removeprefix("metaworld-")
    if name in DIFFICULTY_TO_TASKS:
        return list(DIFFICULTY_TO_TASKS[name])
    if name in TASK_DESCRIPTIONS:
        return [name]
    raise SimError(
        f"unknown Meta-World task {task!r}; choose a group {sorted(DIFFICULTY_TO_TASKS)} or a task {MT50}"
    )


def suite_members(group: str) -> list[str]:
    """A difficulty group as its MT1 tasks' TASKS names (the form of `apprentice.sim.SUITES`)."""
    return [f"metaworld_{name}" for name in task_names(group)]


def policy_class_name(task: str) -> str:
    """Meta-World's scripted policy for an MT1 task: push-v3 -> SawyerPushV3Policy."""
    words = task.removesuffix("-v3").split("-")
    if words == ["peg", "insert", "side"]:
        words = ["peg", "insertion", "side"]  # the one policy not named after its task
    return "Sawyer" + "".join(w.capitalize() for w in words) + "V3Policy"


class MetaworldEnv(BenchmarkEnv):
    fps = 80
    robot_type = "sawyer"
    joint_names: ClassVar[list[str]] = ACTION_NAMES
    camera = "corner2"
    image_key = "observation.image"
    max_episode_steps = 500
    frames_after_success = 10

    def __init__(
        self,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 480,
        image_width: int = 480,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
        obs_type: str = "pixels_agent_pos",
        gym_task: str = "push-v3",
    ) -> None:
        if obs_type != "pixels_agent_pos":
            raise SimError(f"metaworld: obs_type {obs_type!r} is not supported; use pixels_agent_pos")
        self._metaworld = import_benchmark("metaworld", "metaworld")
        if max_episode_steps is not None and max_episode_steps > 500:
            raise SimError(f"metaworld: max_episode_steps {max_episode_steps} > 500, Meta-World's max_path_length")
        self.task_names = task_names(gym_task)
        self._size = (image_height, image_width)
        self._envs: dict[str, Any] = {}
        self._next = 0
        self._select(0)
        super().__init__(
            self._envs[self.task_name],
            seed=seed,
            render=render,
            image_height=image_height,
            image_width=image_width,
            terminate_on_success=terminate_on_success,
            max_episode_steps=max_episode_steps,
        )
        self.observation_space = observation_space(self.features)
        close_at_exit(self)

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        images = {self.image_key: (self.image_height, self.image_width)} if self.render_images else {}
        return features(STATE_NAMES, ACTION_NAMES, images)

    def _select(self, index: int) -> None:
        """Make task `index` of the group the current one (its env is built on first use)."""
        name = self.task_names[index % len(self.task_names)]
        if name not in self._envs:
            mt1 = self._metaworld.MT1(name, seed=42)
            height, width = self._size
            env = mt1.train_classes[name](render_mode="rgb_array", camera_name=self.camera, width=width, height=height)
            env.set_task(mt1.train_tasks[0])
            env.model.cam(self.camera).pos[:] = _CORNER2_POS
            env.reset()
            env._freeze_rand_vec = False
            env.seeded_rand_vec = True
            self._envs[name] = env
        self.task_name = name
        self.task = TASK_DESCRIPTIONS[name]
        self.inner = self._envs[name]
        self._next = index + 1

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is None and not self._seeded:
            seed = self._seed
        self._select(self._next if seed is None else seed)
        if seed is not None:
            self.inner.seed(seed)  # Meta-World's reset ignores its seed argument
        return super().reset(seed=seed, options=options)

    def render(self) -> np.ndarray:
        return np.ascontiguousarray(np.flip(self.inner.render(), (0, 1)))

    def _convert(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        obs = {"observation.state": np.asarray(raw[:4], dtype=np.float32)}
        if self.render_images:
            obs[self.image_key] = self.render()
        return obs

    def _success(self, raw: Any, reward: float, info: dict) -> bool:
        info["task"] = self.task_name
        return bool(info.get("success", 0.0))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


class MetaworldExpert:
    """The env's current task's scripted expert (it reads the full 39-d observation): Meta-World's own
    policy, or for the tasks where that one misses seeds, the corrected expert of `metaworld_experts`."""

    def __init__(self, env: MetaworldEnv) -> None:
        self.env = env
        self._policies: dict[str, Any] = {}

    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        name = self.env.task_name
        if name not in self._policies:
            if name in EXPERTS:
                self._policies[name] = EXPERTS[name]()
            else:
                policies = import_benchmark("metaworld.policies", "metaworld", "metaworld")
                self._policies[name] = getattr(policies, policy_class_name(name))()
        if name in EXPERTS:
            self._policies[name].reset()

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        name = self.env.task_name
        policy = self._policies[name]
        if name in EXPERTS:
            return policy.act(self.env._raw)
        return np.clip(policy.get_action(self.env._raw), -1.0, 1.0).astype(np.float32)


def __getattr__(attr: str) -> Any:
    """`MetaworldEnv[push-v3]`, `MetaworldEnv[easy]`: the env of one task or group, as `sim.TASKS` names it."""
    if attr.startswith("MetaworldEnv[") and attr.endswith("]"):
        return functools.partial(MetaworldEnv, gym_task=attr[len("MetaworldEnv[") : -1])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
