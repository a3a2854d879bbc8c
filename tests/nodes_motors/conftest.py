"""Motors ROS graph tests: a `graph` fixture (rclpy context, executor thread, probe node, virtual arms)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from apprentice.motors import VirtualServoBus
from apprentice.nodes.driver_node import DriverNode
from apprentice.robots import load_robot
from apprentice.robots.virtual_arm import make_virtual_arm


class Probe(Node):
    """Test-side node: latest message per topic and everything on `diagnostics`."""

    def __init__(self, context: object) -> None:
        super().__init__("probe", context=context)
        self.latest: dict[str, object] = {}
        self.count: dict[str, int] = {}
        self.top_speed: dict[str, float] = {}  # largest |velocity| seen per topic, rad/s
        self.diagnostics: list[DiagnosticStatus] = []
        for topic, kind in (("joint_states", JointState), ("leader/joint_states", JointState)):
            self.create_subscription(kind, topic, lambda m, t=topic: self._store(t, m), 50)
        self.create_subscription(DiagnosticArray, "diagnostics", lambda m: self.diagnostics.extend(m.status), 10)
        self.commands = self.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
        self.trajectories = self.create_publisher(JointTrajectory, "joint_trajectory_controller/joint_trajectory", 10)

    def _store(self, topic: str, msg: object) -> None:
        self.latest[topic] = msg
        self.count[topic] = self.count.get(topic, 0) + 1
        self.top_speed[topic] = max(self.top_speed.get(topic, 0.0), *np.abs(msg.velocity), 0.0)

    def positions(self, topic: str = "joint_states") -> np.ndarray | None:
        msg = self.latest.get(topic)
        return None if msg is None else np.array(msg.position)


class Graph:
    """One rclpy context + executor thread; nodes and virtual buses are torn down in the right order."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        # One thread, as run_node spins a driver: a multi-threaded executor busy-polls while the bus
        # loop's timer is ready but its callback group is taken, starving the virtual bus of the GIL.
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes: list[Node] = []
        self.buses: list[VirtualServoBus] = []
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def probe(self) -> Probe:
        return self.add(Probe(self.context))

    def start_driver(self, virtual: VirtualServoBus, **params: object) -> DriverNode:
        overrides = [
            Parameter("port", value=virtual.port),
            *(Parameter(k, value=v) for k, v in params.items()),
        ]
        return self.add(DriverNode(context=self.context, parameter_overrides=overrides))

    @staticmethod
    def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def virtual_arm(self, robot_type: str, **kwargs: object) -> VirtualServoBus:
        virtual = make_virtual_arm(load_robot(robot_type), **kwargs)
        virtual.start()
        self.buses.append(virtual)
        return virtual

    def close(self) -> None:
        for node in self.nodes:  # out of the wait set first, so no callback is in flight at destruction
            self.executor.remove_node(node)
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=2.0)  # no callback may run while nodes are destroyed
        for node in reversed(self.nodes):  # nodes release torque and ports while the buses still exist
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        for virtual in self.buses:
            virtual.stop()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Graph]:
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "no-calibration"))  # ignore ~/.cache files
    g = Graph()
    try:
        yield g
    finally:
        g.close()
