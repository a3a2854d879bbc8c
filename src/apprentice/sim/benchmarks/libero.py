"""`--env.type=libero`: the LIBERO suites of hf-libero (libero_spatial, libero_object, libero_goal, libero_10).

Keys as lerobot's libero env and its LiberoProcessorStep make them: `observation.images.image` (agentview)
and `observation.images.image2` (eye-in-hand), 256x256, both turned 180 degrees; `observation.state` (8:
end-effector position, end-effector axis-angle, the two gripper finger positions); `action` (7: delta
end-effector pose and gripper, in [-1, 1]); 20 fps (robosuite's control rate, which lerobot's config
says since 0.5; 0.4.4 said 30); episode lengths per suite as lerobot's TASK_SUITE_MAX_STEPS. One env
plays its suite's tasks in turn: a seeded reset takes task `seed % n_tasks` and that task's init state
`(seed // n_tasks) % n_init_states` from the suite's init files, then 10 no-op steps as lerobot does.

The task lists come from the package's benchmark (its bddl files and their language); the scene assets
are not in the wheel and hf-libero downloads them from the Hub on first use, which no machine here can
reach: without them the env stops with one line saying where to put them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from apprentice.sim.base import SimError
from apprentice.sim.benchmarks.base import BenchmarkEnv, import_benchmark
from apprentice.sim.benchmarks.layout import close_at_exit, features, observation_space

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
# lerobot's TASK_SUITE_MAX_STEPS: a little above each suite's longest training demonstration
MAX_STEPS = {"libero_spatial": 280, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
STATE_NAMES = ["eef.x", "eef.y", "eef.z", "eef.ax", "eef.ay", "eef.az", "gripper.left", "gripper.right"]
ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
CAMERAS = {"agentview_image": "observation.images.image", "robot0_eye_in_hand_image": "observation.images.image2"}
NOOP = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)  # lerobot's dummy action: hold, gripper open
SETTLE_STEPS = 10
ASSETS_REPO = "lerobot/libero-assets"  # the Hub dataset hf-libero downloads its scene assets from
_ASSET_DIRS = ("articulated_objects", "stable_scanned_objects", "turbosquid_objects", "stable_hope_objects")


def _package_root() -> Path:
    """hf-libero's `libero/libero` folder, found without running its __init__ (which may prompt on stdin)."""
    spec = importlib.util.find_spec("libero.libero") if importlib.util.find_spec("libero") else None
    if spec is None or spec.origin is None:
        raise SimError("hf-libero is not installed; install it with: pip install 'apprentice[libero]'")
    return Path(spec.origin).parent


def _ensure_config() -> None:
    """Point hf-libero at its own bundled paths unless the user has a config: without one, importing it
    asks questions on stdin, which a headless run (CI, eval) cannot answer."""
    config_dir = Path(os.environ.get("LIBERO_CONFIG_PATH", Path.home() / ".libero"))
    if (config_dir / "config.yaml").exists():
        return
    import yaml

    root = _package_root()
    paths = {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(root.parent / "datasets"),
        "assets": str(root / "assets"),
    }
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text(yaml.safe_dump(paths))


def suite_tasks(suite: str) -> list[Any]:
    """The tasks of a LIBERO suite in the package's order (name, language, bddl file, init states file)."""
    if suite not in (*SUITES, "libero_90"):
        raise SimError(f"unknown LIBERO suite {suite!r}; choose one of {[*SUITES, 'libero_90']}")
    _package_root()
    _ensure_config()
    benchmark = import_benchmark("libero.libero.benchmark", "libero", "hf-libero")
    return list(benchmark.get_benchmark_dict()[suite]().tasks)


def assets_dir() -> Path:
    """Where hf-libero finds its scene assets, or a SimError saying how to get them there."""
    root = _package_root()
    candidates = [root / "assets", Path.home() / ".cache" / "libero" / "assets"]
    for path in candidates:
        if all((path / d).is_dir() for d in _ASSET_DIRS):
            return path
    raise SimError(
        f"LIBERO scene assets not found in {' or '.join(map(str, candidates))}; hf-libero fetches them from the Hub "
        f"dataset {ASSETS_REPO}, which this machine cannot reach: copy them there from a machine that can "
        f"(huggingface-cli download {ASSETS_REPO} --repo-type dataset --local-dir {candidates[1]})"
    )


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """An (x, y, z, w) quaternion as an axis-angle vector (3), the way lerobot's LIBERO processor turns it."""
    quat = np.asarray(quat, dtype=np.float64)
    w = float(np.clip(quat[3], -1.0, 1.0))
    sin_half = np.sqrt(max(1.0 - w * w, 0.0))
    if sin_half <= 1e-10:
        return np.zeros(3)
    return quat[:3] / sin_half * (2.0 * np.arccos(w))


def libero_features(image_height: int, image_width: int, render: bool = True) -> dict[str, dict[str, Any]]:
    """The dataset features of a LIBERO env (the same for every suite)."""
    images = {key: (image_height, image_width) for key in CAMERAS.values()} if render else {}
    return features(STATE_NAMES, ACTION_NAMES, images)


class LiberoEnv(BenchmarkEnv):
    fps = 20
    robot_type = "panda"
    joint_names: ClassVar[list[str]] = ACTION_NAMES
    camera = "image"
    image_key = "observation.images.image"
    frames_after_success = 10

    def __init__(
        self,
        seed: int | None = 0,
        render: bool = True,
        image_height: int = 256,
        image_width: int = 256,
        terminate_on_success: bool = True,
        max_episode_steps: int | None = None,
        obs_type: str = "pixels_agent_pos",
        gym_task: str = "libero_10",
        task_id: int | None = None,
    ) -> None:
        if obs_type != "pixels_agent_pos":
            raise SimError(f"libero: obs_type {obs_type!r} is not supported; use pixels_agent_pos")
        self.suite = gym_task
        self.tasks = suite_tasks(gym_task)
        self._first_id = task_id or 0  # the suite's id of self.tasks[0]
        if task_id is not None:
            if not 0 <= task_id < len(self.tasks):
                raise SimError(f"{gym_task}: task_id {task_id} is not in [0, {len(self.tasks) - 1}]")
            # one task (lerobot-eval's per-task env): its init states in turn, seed s -> state s % n
            self.tasks = [self.tasks[task_id]]
        assets_dir()
        import_benchmark("robosuite", "libero", "robosuite (an hf-libero dependency)")
        self._libero = import_benchmark("libero.libero", "libero", "hf-libero")
        self._envs_mod = import_benchmark("libero.libero.envs", "libero", "hf-libero")
        self._size = (image_height, image_width)
        self._init_states: dict[int, Any] = {}
        self._next = 0
        self.max_episode_steps = max_episode_steps or MAX_STEPS[gym_task]
        self._select(0)
        super().__init__(
            self.inner,
            seed=seed,
            render=render,
            image_height=image_height,
            image_width=image_width,
            terminate_on_success=terminate_on_success,
            max_episode_steps=self.max_episode_steps,
        )
        import gymnasium as gym

        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self.observation_space = observation_space(self.features)
        close_at_exit(self)

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return libero_features(self.image_height, self.image_width, self.render_images)

    def _select(self, index: int) -> None:
        """Build the env of task `index % n_tasks` (robosuite builds a scene per bddl file)."""
        import torch

        task_id = index % len(self.tasks)
        task = self.tasks[task_id]
        if getattr(self, "inner", None) is not None and self.task_id == task_id:
            return
        if getattr(self, "inner", None) is not None:
            self.inner.close()
        bddl = Path(self._libero.get_libero_path("bddl_files")) / task.problem_folder / task.bddl_file
        height, width = self._size
        self.inner = self._envs_mod.OffScreenRenderEnv(
            bddl_file_name=str(bddl), camera_heights=height, camera_widths=width
        )
        if task_id not in self._init_states:
            path = Path(self._libero.get_libero_path("init_states")) / task.problem_folder / task.init_states_file
            self._init_states[task_id] = torch.load(path, weights_only=False)  # hf-libero's own pickled arrays
        self.task_id = task_id
        self.task = task.language

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is None and not self._seeded:
            seed = self._seed
        index = self._next if seed is None else seed
        self._select(index)
        self._next = index + 1
        super(BenchmarkEnv, self).reset(seed=seed)
        self._seeded = True
        self._elapsed = 0
        self.inner.seed(seed)
        self.inner.reset()
        states = self._init_states[self.task_id]
        raw = self.inner.set_init_state(states[(index // len(self.tasks)) % len(states)])
        for _ in range(SETTLE_STEPS):
            raw, _, _, _ = self.inner.step(NOOP)
        for robot in self.inner.robots:
            robot.controller.use_delta = True  # lerobot's control_mode="relative"
        self._raw = raw
        return self._convert(raw), {"is_success": False, "task_id": self._first_id + self.task_id}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (7,) or not np.all(np.isfinite(action)):
            raise SimError(f"{self.task!r}: action must be 7 finite values, got {action}")
        raw, reward, done, info = self.inner.step(action.astype(np.float64))
        self._raw = raw
        self._elapsed += 1
        success = bool(self.inner.check_success())
        terminated = bool(done or (success and self.terminate_on_success))
        truncated = self._elapsed >= self.max_episode_steps
        info = {**info, "is_success": success, "task_id": self._first_id + self.task_id}
        return self._convert(raw), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray:
        return self._convert(self.inner.env._get_observations())[self.image_key]

    def _convert(self, raw: dict) -> dict[str, np.ndarray]:
        state = np.concatenate(
            [raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]]
        )
        obs = {"observation.state": state.astype(np.float32)}
        if self.render_images:
            for camera, key in CAMERAS.items():
                obs[key] = np.ascontiguousarray(raw[camera][::-1, ::-1])  # lerobot's 180-degree turn
        return obs

    def close(self) -> None:
        if getattr(self, "inner", None) is not None:
            self.inner.close()


class LiberoExpertUnavailable:
    """LIBERO has no scripted expert: its demonstrations are human teleoperation (the Hub datasets)."""

    def __init__(self, env: LiberoEnv) -> None:
        raise SimError(
            "libero has no scripted expert (its demonstrations are human teleoperation); record with a policy "
            "or use the LIBERO datasets"
        )


def suite_members(suite: str) -> list[tuple[str, dict[str, Any]]]:
    """A suite as per-task envs, in the package's order: [(the suite's TASKS name, {"task_id": i}), ...]
    (the form of `apprentice.sim.SUITES`, for lerobot-eval's per-task results)."""
    return [(f"{suite}_task", {"task_id": i}) for i in range(len(suite_tasks(suite)))]


def __getattr__(attr: str) -> Any:
    """`LiberoEnv[libero_spatial]`: the env of one suite, as `sim.TASKS` names it."""
    if attr.startswith("LiberoEnv[") and attr.endswith("]"):
        import functools

        return functools.partial(LiberoEnv, gym_task=attr[len("LiberoEnv[") : -1])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
