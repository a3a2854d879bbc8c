"""Feature layout and headless rendering for the wrapped envs whose state, action and cameras differ in shape.

`dataset_features` in sim/base.py assumes one camera and an action laid out like the state (joint
positions). gym-xarm, gym-hil, Meta-World and LIBERO act in end-effector deltas, and gym-hil and LIBERO
have two cameras, so their wrappers describe their features with `features` below.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from apprentice.sim.base import SimError, mujoco


def features(
    state_names: Sequence[str],
    action_names: Sequence[str],
    images: Mapping[str, tuple[int, int]],
    environment_state_names: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """LeRobot info.json features: state, environment state, one video per image key (H, W), action."""
    out: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)}
    }
    if environment_state_names:
        out["observation.environment_state"] = {
            "dtype": "float32",
            "shape": [len(environment_state_names)],
            "names": list(environment_state_names),
        }
    for key, (height, width) in images.items():
        out[key] = {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"]}
    out["action"] = {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)}
    return out


def observation_space(feats: Mapping[str, Mapping[str, Any]]) -> gym.spaces.Dict:
    """The gymnasium Dict space of the observation features in `feats` (everything but `action`)."""
    spaces: dict[str, gym.Space] = {}
    for key, ft in feats.items():
        if key == "action":
            continue
        if ft["dtype"] == "video":
            spaces[key] = gym.spaces.Box(0, 255, tuple(ft["shape"]), np.uint8)
        else:
            spaces[key] = gym.spaces.Box(-np.inf, np.inf, tuple(ft["shape"]), np.float32)
    return gym.spaces.Dict(spaces)


def make_renderer(model: Any, height: int, width: int, who: str) -> Any:
    """A `mujoco.Renderer`, or a SimError that says which MUJOCO_GL and system package make one work.

    The renderer is closed at interpreter exit if its owner never closed it: an EGL context left to
    `__del__` during shutdown prints an EGLError traceback (the process still exits 0), which reads like
    a rendering failure.
    """
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
    try:
        renderer = mujoco.Renderer(model, height, width)
    except Exception as exc:  # mujoco raises FatalError, PyOpenGL its own errors, by backend
        raise SimError(
            f"{who}: cannot render headless ({type(exc).__name__}: {exc}); set MUJOCO_GL=egl (apt: libegl1 "
            "libgl1-mesa-dri) or MUJOCO_GL=osmesa (apt: libosmesa6) before Python starts, or pass render=False"
        ) from exc
    close_at_exit(renderer)
    return renderer


def close_at_exit(obj: Any) -> None:
    """Call `obj.close()` at interpreter exit unless it is gone by then (see `make_renderer`)."""
    ref = weakref.ref(obj)

    def _close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    atexit.register(_close)
