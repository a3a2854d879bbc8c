"""Damped least-squares inverse kinematics on a MuJoCo site, shared by the scripted experts."""

from __future__ import annotations

import mujoco
import numpy as np


def solve_ik(
    model: mujoco.MjModel,
    site: str,
    target_pos: np.ndarray,
    joints: list[str],
    q_init: dict[str, float],
    target_axis: np.ndarray | None = None,
    axis_weight: float = 0.1,
    target_rot: np.ndarray | None = None,
    iterations: int = 200,
    damping: float = 1e-3,
    tolerance: float = 1e-4,
) -> tuple[dict[str, float], float]:
    """Joint positions that put `site` at `target_pos`, and its z axis along `target_axis` (softly, with
    `axis_weight`) or its whole frame at the rotation matrix `target_rot` (fully weighted).

    Only `joints` move; every other joint keeps its `q_init` value (default: the model's qpos0).
    Returns ({joint: position}, final position error in metres). Deterministic: no random restarts.
    """
    data = mujoco.MjData(model)
    for name, value in q_init.items():
        data.joint(name).qpos[0] = value
    qpos_adr = np.array([model.joint(n).qposadr[0] for n in joints])
    dof_adr = np.array([model.joint(n).dofadr[0] for n in joints])
    low = model.jnt_range[[model.joint(n).id for n in joints], 0]
    high = model.jnt_range[[model.joint(n).id for n in joints], 1]
    site_id = model.site(site).id
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))
    target_pos = np.asarray(target_pos, dtype=np.float64)
    err_norm = np.inf
    for _ in range(iterations):
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        pos = data.site_xpos[site_id]
        err = target_pos - pos
        err_norm = float(np.linalg.norm(err))
        mujoco.mj_jacSite(model, data, jacp, jacr, site_id)
        rows = [jacp[:, dof_adr]]
        residual = [err]
        if target_axis is not None:
            # Pointing the site's z axis along target_axis: the rotation that aligns them is
            # axis x target; weighting it low keeps position the priority where both cannot hold.
            z_axis = data.site_xmat[site_id].reshape(3, 3)[:, 2]
            rows.append(axis_weight * jacr[:, dof_adr])
            residual.append(axis_weight * np.cross(z_axis, target_axis))
        rot_err = 0.0
        if target_rot is not None:
            # Small-angle orientation error in world coordinates: half the sum of column cross products.
            current = data.site_xmat[site_id].reshape(3, 3)
            omega = 0.5 * sum(np.cross(current[:, i], target_rot[:, i]) for i in range(3))
            rows.append(jacr[:, dof_adr])
            residual.append(omega)
            rot_err = float(np.linalg.norm(omega))
        if err_norm < tolerance and rot_err < tolerance and target_axis is None:
            break
        jac = np.vstack(rows)
        res = np.concatenate(residual)
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(jac.shape[0]), res)
        q = data.qpos[qpos_adr] + np.clip(dq, -0.2, 0.2)
        data.qpos[qpos_adr] = np.clip(q, low, high)
    mujoco.mj_kinematics(model, data)
    err_norm = float(np.linalg.norm(target_pos - data.site_xpos[site_id]))
    return {n: float(data.qpos[a]) for n, a in zip(joints, qpos_adr)}, err_norm


def min_jerk(alpha: float) -> float:
    """Minimum-jerk time scaling: 0 → 1 with zero velocity and acceleration at both ends."""
    a = min(max(alpha, 0.0), 1.0)
    return a * a * a * (10.0 - 15.0 * a + 6.0 * a * a)
