"""ROS graph tests: input devices -> teleop node -> commands -> driver node -> virtual follower.

Joy messages are published on a real graph as joy_node would; the terminal keyboard reads a real pty.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from apprentice.nodes.teleop_node import TeleopNode
from apprentice.teleop import TeleopError

pytestmark = pytest.mark.ros


class Operator(Node):
    """Test side: a joystick driver's Joy topic, the recorder's stop service, and what the teleop node says."""

    def __init__(self, context: object) -> None:
        super().__init__("operator", context=context)
        self.joy = self.create_publisher(Joy, "joy", 10)
        self.commands: list[tuple[float, list[float]]] = []
        self.intervention: list[bool] = []
        self.stop_calls = 0
        self.create_subscription(
            Float64MultiArray, "forward_position_controller/commands",
            lambda m: self.commands.append((time.monotonic(), list(m.data))), 50,
        )  # fmt: skip
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(Bool, "teleop/intervention", lambda m: self.intervention.append(m.data), latched)
        self.create_service(Trigger, "recorder/stop_episode", self._on_stop)

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.stop_calls += 1
        response.success, response.message = True, "saved"
        return response

    def send(self, axes: list[float], pressed: tuple[int, ...] = ()) -> None:
        buttons = [1 if i in pressed else 0 for i in range(15)]
        self.joy.publish(Joy(axes=axes, buttons=buttons))


LB, RB, Y = 9, 10, 3  # joy_node's SDL layout (config/teleop/gamepad.yaml)


def start_teleop(graph, **params: object) -> TeleopNode:
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return graph.add(TeleopNode(context=graph.context, parameter_overrides=overrides))


def joy_for(graph, operator: Operator, seconds: float, axes: list[float], pressed: tuple[int, ...]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # joy_node's autorepeat: 20 Hz while a stick is held
        operator.send(axes, pressed)
        time.sleep(0.05)


def test_joy_drives_the_follower_with_dead_man_timeout_intervention_and_episode_keys(graph) -> None:
    follower = graph.virtual_arm("so101_follower", tau_s=0.02)
    graph.start_driver(follower)
    probe = graph.probe()
    operator = graph.add(Operator(graph.context))
    start_teleop(graph, source="joy", device_config="gamepad_joints", max_relative_target=0.2)
    assert graph.wait_for(lambda: probe.positions() is not None)
    start = probe.positions()

    joy_for(graph, operator, 0.5, [1.0, 0, 0, 0, 0, 0], pressed=())  # stick full left, dead-man not held
    assert operator.commands == []  # nothing commanded: the driver holds

    joy_for(graph, operator, 1.0, [1.0, 0, 0, 0, 0, 0], pressed=(LB, RB))  # LB held: shoulder_pan at 1 rad/s
    assert graph.wait_for(lambda: probe.positions()[0] - start[0] > 0.4), probe.positions() - start
    assert np.allclose(probe.positions()[1:5], start[1:5], atol=0.02)  # only the mapped joint moved
    assert graph.wait_for(lambda: True in operator.intervention)  # RB held: intervention published

    joy_for(graph, operator, 0.3, [1.0, 0, 0, 0, 0, 0], pressed=(Y,))  # LB released, Y = stop episode
    assert graph.wait_for(lambda: operator.stop_calls == 1)
    assert graph.wait_for(lambda: operator.intervention[-1] is False)
    time.sleep(0.2)
    n, held = len(operator.commands), probe.positions()
    time.sleep(0.5)
    assert len(operator.commands) == n  # dead-man released: no command
    assert np.allclose(probe.positions(), held, atol=0.01)
    assert graph.wait_for(lambda: any("holding: dead-man 'tl' released" in d.message for d in probe.diagnostics), 3.0)

    joy_for(graph, operator, 0.4, [-1.0, 0, 0, 0, 0, 0], pressed=(LB,))
    # The joystick driver dies with the stick held: commands stop within timeout_s (0.5 s).
    last_message = time.monotonic()
    time.sleep(1.0)
    assert operator.commands[-1][0] - last_message < 0.5 + 0.2
    assert operator.commands[-1][0] > last_message - 0.1


def test_terminal_keyboard_on_a_pty_drives_the_follower(graph) -> None:
    follower = graph.virtual_arm("so101_follower", tau_s=0.02)
    graph.start_driver(follower)
    probe = graph.probe()
    master, slave = os.openpty()
    try:
        start_teleop(graph, source="keyboard", device=os.ttyname(slave), device_config="keyboard_joints")
        assert graph.wait_for(lambda: probe.positions() is not None)
        start = probe.positions()
        for _ in range(30):  # key `3` held: the terminal's autorepeat, ~30 presses a second
            os.write(master, b"3")
            time.sleep(0.033)
        assert graph.wait_for(lambda: probe.positions()[2] - start[2] > 0.3), probe.positions() - start
        assert abs(probe.positions()[0] - start[0]) < 0.02
    finally:
        os.close(master)
        os.close(slave)


def test_bad_source_and_device_config_fail_with_one_line(graph, tmp_path) -> None:
    with pytest.raises(Exception, match="parameter source must be one of"):
        start_teleop(graph, source="theremin")
    with pytest.raises(TeleopError, match="cannot read device map"):
        start_teleop(graph, source="joy", device_config=str(tmp_path / "missing.yaml"))
    bad = tmp_path / "pad.yaml"
    bad.write_text("joy: {axes: {0: left_x}}\naxes: {left_x: {target: waist, scale: 1}}\n")
    with pytest.raises(TeleopError, match=r"\['waist'\] are not joints"):
        start_teleop(graph, source="joy", device_config=str(bad))


def test_cli_flags_become_node_parameters() -> None:
    from apprentice.nodes.teleop_cli import _cli_overrides

    params, rest = _cli_overrides(["--source", "joy", "--device_config", "gamepad_joints", "--phone_port", "9000",
                                   "--ros-args", "-r", "__ns:=/arm"])  # fmt: skip
    values = {p.name: p.value for p in params}
    assert values["source"] == "joy" and values["device_config"] == "gamepad_joints" and values["phone_port"] == 9000
    assert rest == ["--ros-args", "-r", "__ns:=/arm"]
    with pytest.raises(SystemExit):
        _cli_overrides(["--source", "theremin"])


def test_phone_page_protocol_drives_the_follower_and_a_closed_page_stops_it(graph) -> None:
    import json

    from websockets.sync.client import connect

    follower = graph.virtual_arm("so101_follower", tau_s=0.02)
    graph.start_driver(follower)
    probe = graph.probe()
    operator = graph.add(Operator(graph.context))
    teleop = start_teleop(graph, source="phone", device_config="phone_joints", phone_port=0)
    assert graph.wait_for(lambda: probe.positions() is not None)
    start = probe.positions()
    url = teleop.source.device.url.replace("http", "ws") + "ws"
    with connect(url) as ws:

        def state(alpha: float) -> None:  # what the page sends: degrees, held buttons
            ws.send(json.dumps({"type": "state", "alpha": alpha, "beta": 0.0, "gamma": 0.0, "buttons": ["deadman"]}))

        for i in range(21):  # turn the phone 20° over ~0.7 s with the dead-man held
            state(float(i))
            time.sleep(0.033)
        target = start[0] + np.radians(20.0)
        assert graph.wait_for(lambda: abs(probe.positions()[0] - target) < 0.01), probe.positions() - start
        ws.send(json.dumps({"type": "press", "button": "stop"}))
        assert graph.wait_for(lambda: operator.stop_calls == 1)
    n = len(operator.commands)  # the page closed: the node holds at once (no timeout needed)
    time.sleep(0.4)
    assert len(operator.commands) <= n + 1
