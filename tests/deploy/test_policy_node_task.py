"""The policy node's task topic on a real ROS 2 graph: a std_msgs/String changes the instruction it infers with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")

from deploy_helpers import SimReachInputs, spin, wait_for  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from test_policy_node import start_infer, stop  # noqa: E402


class Operator(Node):
    """Plays the robot's inputs, counts commands, reads the node's diagnostics, publishes instructions."""

    def __init__(self) -> None:
        super().__init__("operator")
        self.inputs = SimReachInputs(self)
        self.commands = 0
        self.tasks: list[str] = []
        self.create_subscription(Float64MultiArray, "forward_position_controller/commands", self._on_command, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.instruction_pub = self.create_publisher(String, "instruction", 10)
        self.create_timer(1 / 30, lambda: self.inputs.publish(np.zeros(6)))

    def _on_command(self, _msg: Float64MultiArray) -> None:
        self.commands += 1

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.tasks += [kv.value for kv in status.values if kv.key == "task"]


@pytest.fixture
def operator() -> Iterator[Operator]:
    yield from spin(Operator)


def test_task_topic_changes_the_instruction_between_chunks(
    operator: Operator, tiny_act: Path, ros_env, tmp_path
) -> None:
    log = tmp_path / "policy_node.log"
    proc = start_infer(
        [
            f"--policy.path={tiny_act}",
            "--device=cpu",
            "--mode=async",
            "--task=reach the red target",
            "--task-topic=instruction",
            "--enable",
            "--ros-args",
            "-p",
            "command_topic:=forward_position_controller/commands",
            "-p",
            "command_type:=std_msgs/msg/Float64MultiArray",
            "-p",
            "diagnostics_period_s:=0.2",
            # enabled before the operator's inputs are discovered, on a loaded machine: no watchdog trips
            "-p",
            "input_timeout_s:=30.0",
            "-p",
            "action_timeout_s:=30.0",
        ],
        {**ros_env, "OMP_NUM_THREADS": "1"},
        log,
    )
    try:
        wait_for(lambda: operator.commands >= 5, 60, lambda: f"commands ({log.read_text()})")
        wait_for(lambda: operator.tasks, 10, "diagnostics")
        assert operator.tasks[-1] == "reach the red target"  # --task flows to the runtime
        deadline = time.monotonic() + 10
        while operator.tasks[-1] != "reach the blue target" and time.monotonic() < deadline:
            operator.instruction_pub.publish(String(data="reach the blue target"))
            time.sleep(0.2)
        assert operator.tasks[-1] == "reach the blue target", log.read_text()
        n = operator.commands
        # it keeps driving with the new instruction
        wait_for(lambda: operator.commands > n + 5, 20, lambda: f"commands after the new task ({log.read_text()})")
    finally:
        assert stop(proc) == 0, log.read_text()
    assert "task: 'reach the blue target' (from instruction" in log.read_text()
