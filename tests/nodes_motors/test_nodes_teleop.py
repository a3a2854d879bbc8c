"""ROS graph test: leader arm -> teleop node -> commands -> driver node -> follower, all on virtual buses."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter

from apprentice.nodes.teleop_node import TeleopNode

pytestmark = pytest.mark.ros


def test_follower_tracks_a_moving_leader(graph) -> None:
    leader = graph.virtual_arm("so101_leader")
    follower = graph.virtual_arm("so101_follower", tau_s=0.02)
    graph.start_driver(follower)
    teleop = graph.add(
        TeleopNode(
            context=graph.context,
            parameter_overrides=[Parameter("leader_port", value=leader.port), Parameter("fps", value=60.0)],
        )
    )
    probe = graph.probe()
    assert graph.wait_for(lambda: probe.count.get("leader/joint_states", 0) > 5)
    assert all(m.get("Torque_Enable") == 0 for m in leader.motors)  # a leader is moved by hand
    assert list(probe.latest["leader/joint_states"].name) == teleop.source.joint_names

    # The operator's hand: each leader joint sweeps to its own angle over ~1 s, then holds.
    start = np.array([m.get("Present_Position") for m in leader.motors], dtype=float)
    offsets = np.array([350, -300, 250, -200, 400, 150], dtype=float)
    errors = []
    for step in range(1, 51):
        for motor, begin, offset in zip(leader.motors, start, offsets):
            motor.set_hand_position(begin + offset * step / 50)
        graph.wait_for(lambda: False, timeout=0.02)
        if probe.positions() is not None and probe.positions("leader/joint_states") is not None:
            errors.append(np.abs(probe.positions() - probe.positions("leader/joint_states")).max())
    target = offsets * 2 * np.pi / 4095  # radians the leader moved
    assert graph.wait_for(lambda: np.allclose(probe.positions("leader/joint_states"), target, atol=0.003))
    assert graph.wait_for(lambda: np.allclose(probe.positions(), target, atol=0.01)), probe.positions()
    assert np.median(errors) < 0.1  # tracking while moving, not only at the end
