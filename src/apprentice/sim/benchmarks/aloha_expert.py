"""Scripted experts for gym-aloha's transfer-cube and insertion, planned in end-effector space.

Privileged: each reads the objects' poses from the simulator (at reset, and live while one arm brings its
tool to an object the other arm holds). Every step the two tools' planned poses are solved to joint
positions (`aloha_motion.ArmIK`) and sent as the env's 14-d joint action, the way the ACT paper's
scripted demonstrations were made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apprentice.sim.benchmarks.aloha_motion import ArmIK, ArmPlan, Key, Pose, grasp_height, gripper_frame

SIDES = ("left", "right")


def pitched(direction: float, pitch_deg: float, fingers: tuple[float, float, float]) -> np.ndarray:
    """A tool rotation approaching along world ±x (`direction`), tilted `pitch_deg` down toward the table."""
    p = np.radians(pitch_deg)
    return gripper_frame(np.array([direction * np.cos(p), 0.0, -np.sin(p)]), np.array(fingers))


class AlohaExpert:
    """Drives both arms along a two-arm plan built at reset from the objects' poses."""

    def __init__(self, env: Any) -> None:
        self.env = env
        model = env.physics.model.ptr
        self.ik = {side: ArmIK(model, side) for side in SIDES}
        self.plans: dict[str, ArmPlan] = {}
        self.q: dict[str, np.ndarray] = {}
        self.step = 0

    # --------------------------------------------------------------------------- live state
    @property
    def data(self) -> Any:
        return self.env.physics.data.ptr

    def tool(self, side: str) -> Pose:
        return self.ik[side].tool_pose(self.data)

    def body_pose(self, body: str) -> Pose:
        b = self.data.body(body)
        return b.xpos.copy(), b.xmat.reshape(3, 3).copy()

    # ------------------------------------------------------------------------------ policy
    def reset(self, obs: dict[str, np.ndarray] | None = None) -> None:
        self.step = 0
        self.q = {side: self.data.qpos[self.ik[side].qadr].copy() for side in SIDES}
        self.plans = self.plan({side: self.tool(side) for side in SIDES})

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        self.step += 1
        action = []
        for side in SIDES:
            pose, grip = self.plans[side].sample(self.step)
            self.q[side] = self.ik[side].solve(self.q[side], pose)
            action += [*self.q[side], grip]
        return np.asarray(action, dtype=np.float32)

    def plan(self, start: dict[str, Pose]) -> dict[str, ArmPlan]:
        raise NotImplementedError

    def resting(self, body: str) -> np.ndarray:
        """Where `body` (dropped from its start height by gym-aloha's reset) comes to rest on the table."""
        model = self.env.physics.model.ptr
        pos = self.data.body(body).xpos.copy()
        b = model.body(body).id
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == b]
        pos[2] = -min(model.geom_pos[g][2] - model.geom_size[g][2] for g in geoms)
        return pos


class TransferCubeExpert(AlohaExpert):
    """Right: over the cube, down, grasp, lift to the hand-over point. Left: fingers vertical, closes on the
    cube beside the right's fingers. Then the right lets go and backs off."""

    MEET = np.array([0.0, 0.5, 0.22])

    def plan(self, start: dict[str, Pose]) -> dict[str, ArmPlan]:
        cube = self.resting("box")
        pick = pitched(-1.0, 60.0, (0.0, -1.0, 0.0))
        carry = pitched(-1.0, 0.0, (0.0, -1.0, 0.0))
        receive = gripper_frame(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))
        up = np.array([0.0, 0.0, 0.08])
        hold_at = self.MEET + np.array([0.012, 0.0, 0.0])

        def beside_cube(dx: float) -> Any:
            return lambda: (self.body_pose("box")[0] + np.array([dx, 0.0, 0.0]), receive)

        right = ArmPlan(
            [
                Key(0, start["right"], 1.0),
                Key(90, (cube + up, pick), 1.0),
                Key(130, (np.array([*cube[:2], grasp_height(pick)]), pick), 1.0),
                Key(150, None, 0.0),
                Key(160, None, 0.0),
                Key(230, (hold_at, carry), 0.0),
                Key(290, None, 0.0),
                Key(305, None, 1.0),
                Key(340, (hold_at + np.array([0.12, 0.0, 0.02]), carry), 1.0),
            ]
        )
        left = ArmPlan(
            [
                Key(0, start["left"], 1.0),
                Key(160, start["left"], 1.0),
                Key(230, beside_cube(-0.10), 1.0),
                Key(265, beside_cube(-0.014), 1.0),
                Key(285, None, 0.0),
                Key(305, None, 0.0),
                Key(340, (self.MEET + np.array([-0.08, 0.0, 0.0]), receive), 0.0),
            ]
        )
        return {"left": left, "right": right}


class InsertionExpert(AlohaExpert):
    """Right: grasps the peg near its +x end; left: grasps the socket near its -x end; both lift level. The
    right then lines the peg up with the socket's axis as both are really held (read live), and pushes it in
    until it meets the pin."""

    SOCKET_AT = np.array([-0.08, 0.5, 0.20])  # where the left holds the socket's centre
    PEG_GRASP = 0.03  # grasp this far from the peg's centre toward +x (the socket's: toward -x)
    PICK_PITCH = 75.0  # steeper than 60: the pads then hold the 2 cm peg over more of its height

    def plan(self, start: dict[str, Pose]) -> dict[str, ArmPlan]:
        peg, socket = self.resting("peg"), self.resting("socket")
        right_rot = pitched(-1.0, self.PICK_PITCH, (0.0, -1.0, 0.0))
        left_rot = pitched(1.0, self.PICK_PITCH, (0.0, 1.0, 0.0))
        up = np.array([0.0, 0.0, 0.08])
        peg_grasp = np.array([peg[0] + self.PEG_GRASP, peg[1], grasp_height(right_rot)])
        socket_grasp = np.array([socket[0] - self.PEG_GRASP, socket[1], grasp_height(left_rot)])
        socket_held = self.SOCKET_AT + np.array([-self.PEG_GRASP, 0.0, 0.0])
        right = ArmPlan(
            [
                Key(0, start["right"], 1.0),
                Key(90, (peg_grasp + up, right_rot), 1.0),
                Key(130, (peg_grasp, right_rot), 1.0),
                Key(150, None, 0.0),
                Key(160, None, 0.0),
                Key(220, (self.SOCKET_AT + np.array([0.25, 0.0, 0.0]), right_rot), 0.0),
                Key(280, lambda: self.peg_in_socket(0.17), 0.0),
                Key(340, lambda: self.peg_in_socket(0.095), 0.0),
            ]
        )
        left = ArmPlan(
            [
                Key(0, start["left"], 1.0),
                Key(90, (socket_grasp + up, left_rot), 1.0),
                Key(130, (socket_grasp, left_rot), 1.0),
                Key(150, None, 0.0),
                Key(160, None, 0.0),
                Key(220, (socket_held, left_rot), 0.0),
            ]
        )
        return {"left": left, "right": right}

    def peg_in_socket(self, depth: float) -> Pose:
        """The right tool pose that puts the peg's centre `depth` along the socket's axis from the socket's
        centre, parallel to it, given where the peg really sits in the right gripper now."""
        tool_pos, tool_rot = self.tool("right")
        peg_pos, peg_rot = self.body_pose("peg")
        socket_pos, socket_rot = self.body_pose("socket")
        rel_rot = tool_rot.T @ peg_rot
        rel_pos = tool_rot.T @ (peg_pos - tool_pos)
        want_rot = socket_rot
        want_pos = socket_pos + socket_rot[:, 0] * depth
        rot = want_rot @ rel_rot.T
        return want_pos - rot @ rel_pos, rot
