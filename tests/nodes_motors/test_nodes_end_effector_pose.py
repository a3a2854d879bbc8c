"""ROS graph test: the driver publishes FK of the measured joints on /tf and end_effector_pose."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from tf2_msgs.msg import TFMessage

from apprentice.teleop import TeleopError, load_kinematics

pytestmark = pytest.mark.ros


def rotation(q: object) -> np.ndarray:
    x, y, z, w = q.x, q.y, q.z, q.w
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_driver_publishes_the_end_effector_pose_on_tf_and_pose_stamped(graph) -> None:
    virtual = graph.virtual_arm("so101_follower", tau_s=0.02)
    graph.start_driver(virtual, publish_end_effector_pose=True, tf_prefix="right/")
    probe = graph.probe()
    received: dict[str, list] = {"tf": [], "pose": []}
    states: dict[tuple[int, int], list[float]] = {}  # joint readings by stamp: each pose names its own
    probe.create_subscription(
        JointState,
        "joint_states",
        lambda m: states.update({(m.header.stamp.sec, m.header.stamp.nanosec): m.position}),
        50,
    )
    probe.create_subscription(TFMessage, "/tf", received["tf"].append, 50)
    probe.create_subscription(PoseStamped, "end_effector_pose", received["pose"].append, 50)
    kinematics = load_kinematics("so101_follower")

    goal = np.array([0.3, -0.4, 0.5, 0.2, -0.3, 0.1])
    probe.commands.publish(Float64MultiArray(data=goal.tolist()))
    assert graph.wait_for(lambda: probe.positions() is not None and np.allclose(probe.positions(), goal, atol=0.005))
    assert graph.wait_for(lambda: len(received["pose"]) > 5 and len(received["tf"]) > 5)
    count = len(received["pose"])
    assert graph.wait_for(lambda: len(received["pose"]) > count + 3)  # poses after the arm settled

    pose = received["pose"][-1]
    expected = kinematics.fk(np.array(states[(pose.header.stamp.sec, pose.header.stamp.nanosec)])[:5])
    assert pose.header.frame_id == "right/base_link"
    p = pose.pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], expected[:3, 3], atol=1e-9)  # FK of that same reading
    np.testing.assert_allclose(rotation(pose.pose.orientation), expected[:3, :3], atol=1e-9)
    moved = np.linalg.norm(expected[:3, 3] - kinematics.fk(np.zeros(5))[:3, 3])
    assert moved > 0.05  # the commanded joints really moved the end effector

    transform = next(t for m in reversed(received["tf"]) for t in m.transforms if t.header.stamp == pose.header.stamp)
    assert (transform.header.frame_id, transform.child_frame_id) == ("right/base_link", "right/gripper_frame_link")
    t = transform.transform.translation
    np.testing.assert_allclose([t.x, t.y, t.z], [p.x, p.y, p.z], atol=1e-12)


def test_unknown_kinematics_fails_with_a_clear_message(graph) -> None:
    virtual = graph.virtual_arm("so101_follower")
    with pytest.raises(TeleopError, match="no kinematics for robot 'so7'"):
        graph.start_driver(virtual, publish_end_effector_pose=True, kinematics="so7")
