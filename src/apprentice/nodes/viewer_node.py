"""Viewer node: a live Foxglove view of the contract's features while recording or deploying.

Subscribes to every topic the contract names (cameras, joint states, action, and the policy's command topic)
and republishes each message, decoded by the contract into dataset units, on a Foxglove WebSocket server on
127.0.0.1 (`apprentice.live_view.LiveView`). Open Foxglove → "Open connection" → ws://127.0.0.1:8765.
Subscriptions are best-effort (sensor-data QoS): they match reliable and best-effort publishers alike and
never slow a publisher down.

    ros2 run apprentice viewer_node --ros-args -p contract:=sim_reach -p port:=8765
    apprentice view --contract sim_reach --port 8765          # the same node, pip install
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data

from apprentice.contract import ContractError, load_contract
from apprentice.live_view import DEFAULT_PORT, LiveView, LiveViewError
from apprentice.nodes.params import Param, declare_parameters, node_help, wants_help
from apprentice.nodes.runtime import message_class, run_node

PARAMETERS = (
    Param("contract", "", "contract name (config/contracts/) or YAML path whose topics are shown (required)"),
    Param("port", DEFAULT_PORT, "Foxglove WebSocket port on 127.0.0.1 (0: any free port)"),
    Param("max_image_hz", 10.0, "images per second per camera sent to the viewer (0: all)"),
    Param("with_command", True, "also show the policy's command topic"),
)


class ViewerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("viewer", **kwargs)
        p = declare_parameters(self, PARAMETERS)
        contract = str(p["contract"])
        if not contract:
            raise ValueError("viewer: parameter 'contract' (a contract name or YAML path) is required")
        port, max_image_hz, with_command = int(p["port"]), float(p["max_image_hz"]), bool(p["with_command"])
        self.view = LiveView(load_contract(contract), port=port, max_image_hz=max_image_hz,
                             with_command=with_command)
        for topic, (msg_type, keys) in self.view.topics.items():
            self.create_subscription(message_class(msg_type), topic, lambda msg, ks=keys: self._on_message(ks, msg),
                                     qos_profile_sensor_data)
        self.get_logger().info(f"live view of {sorted(self.view.specs)} at ws://127.0.0.1:{self.view.port}")

    def _on_message(self, keys: list[str], msg: Any) -> None:
        now_ns = self.get_clock().now().nanoseconds
        for key in keys:
            try:
                self.view.log(key, msg, now_ns)
            except LiveViewError as e:
                self.get_logger().error(str(e), throttle_duration_sec=2.0)

    def close(self) -> None:
        self.view.close()


def _view_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apprentice view", description=__doc__.split("\n")[0], add_help=False)
    parser.add_argument("--contract", required=True, help="contract name (config/contracts/) or YAML path")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="WebSocket port on 127.0.0.1 (0: any free)")
    parser.add_argument("--max_image_hz", type=float, default=10.0, help="images per second per camera (0: all)")
    parser.add_argument("--no_command", action="store_true", help="do not show the policy's command topic")
    return parser


def _cli_overrides(argv: Sequence[str]) -> tuple[list[Parameter], list[str]]:
    """`apprentice view` flags -> node parameters; other args go to rclpy."""
    args, rest = _view_parser().parse_known_args(argv)
    params = [Parameter("contract", value=args.contract), Parameter("port", value=args.port),
              Parameter("max_image_hz", value=args.max_image_hz), Parameter("with_command", value=not args.no_command)]
    return params, rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_help(args):  # both spellings: `apprentice view` flags, then the node's parameter table
        print(_view_parser().format_help())
        print(node_help("viewer_node", __doc__, PARAMETERS), end="")
        return 0
    try:
        if "--ros-args" in args and not any(a.startswith("--contract") for a in args):
            # `ros2 run` / launch: everything comes as parameters
            return run_node(ViewerNode, args, usage=node_help("viewer_node", __doc__, PARAMETERS))
        params, rest = _cli_overrides(args)
        return run_node(lambda: ViewerNode(parameter_overrides=params), rest)
    except (ContractError, LiveViewError, ValueError) as exc:
        print(f"apprentice view: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
