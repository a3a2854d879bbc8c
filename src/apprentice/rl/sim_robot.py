"""The simulated arm behind the `RobotEnv` interfaces: a MuJoCo task's joints, camera and IK.

`MujocoArm` adapts an `apprentice.sim` MujocoTask (e.g. `reach`, the SO-101-like arm) to `Robot`: joint
targets go to its position servos, `wait` advances physics, the task's camera is the robot's camera.
`MujocoKinematics` is FK/IK of one site (`apprentice.sim.ik`) over the arm joints.
"""

from __future__ import annotations

import mujoco
import numpy as np

from apprentice.sim.ik import solve_ik


class MujocoArm:
    def __init__(self, task: object, camera: str | None = None) -> None:
        self.task = task
        self.model, self.data = task.model, task.data
        self.joint_names = list(task.joint_names)
        self.camera = camera or task.camera

    def read_joints(self) -> np.ndarray:
        return np.array([self.data.joint(n).qpos[0] for n in self.joint_names])

    def send_joints(self, q: np.ndarray) -> None:
        self.data.ctrl[:] = np.clip(q, self.model.actuator_ctrlrange[:, 0], self.model.actuator_ctrlrange[:, 1])

    def read_images(self) -> dict[str, np.ndarray]:
        return {self.camera: self.task.render()} if self.task.render_images else {}

    def wait(self, seconds: float) -> None:
        mujoco.mj_step(self.model, self.data, nstep=max(1, round(seconds / self.model.opt.timestep)))


class MujocoKinematics:
    def __init__(self, model: mujoco.MjModel, site: str, joints: list[str], arm_joints: list[str]) -> None:
        self.model, self.site, self.joints, self.arm_joints = model, site, joints, arm_joints
        self._data = mujoco.MjData(model)
        self._site = model.site(site).id

    def fk(self, q: np.ndarray) -> np.ndarray:
        for name, value in zip(self.joints, q):
            self._data.joint(name).qpos[0] = value
        mujoco.mj_kinematics(self.model, self._data)
        return self._data.site_xpos[self._site].copy()

    def ik(self, position: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        seed = dict(zip(self.joints, (float(v) for v in q_seed)))
        solved, _ = solve_ik(self.model, self.site, position, self.arm_joints, seed, iterations=50)
        return np.array([solved.get(n, seed[n]) for n in self.joints])
