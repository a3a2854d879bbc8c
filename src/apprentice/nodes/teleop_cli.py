"""`apprentice teleop`: flags (lerobot-teleoperate's names where they exist) -> the teleop node's parameters.

    apprentice teleop --source keyboard --robot.type so101_follower
    apprentice teleop --source leader_arm --teleop.type so101_leader --teleop.port /dev/ttyACM1
    apprentice teleop --source phone --phone_host 0.0.0.0 --phone_certfile cert.pem --phone_keyfile key.pem

`--ros-args ...` without --source runs the node on its parameters alone (as `ros2 run` does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rclpy.parameter import Parameter

from apprentice.motors import BusError
from apprentice.nodes.runtime import run_node
from apprentice.nodes.teleop_node import SOURCES, TeleopNode
from apprentice.teleop import TeleopError


def _cli_overrides(argv: Sequence[str]) -> tuple[list[Parameter], list[str]]:
    """`apprentice teleop` flags (lerobot-teleoperate's names where they exist) -> node parameters."""
    parser = argparse.ArgumentParser(prog="apprentice teleop", description=__doc__.split("\n")[0].strip("`"))
    parser.add_argument("--source", default="leader_arm", choices=SOURCES)
    parser.add_argument("--robot.type", dest="robot_type", default="so101_follower", help="follower a device drives")
    parser.add_argument("--teleop.type", dest="leader_robot_type", default="so101_leader", help="leader arm type")
    parser.add_argument("--teleop.port", dest="leader_port", default="", help="leader arm port, or `virtual`")
    parser.add_argument("--teleop.id", dest="leader_robot_id", default="default", help="leader calibration id")
    parser.add_argument("--device_config", default="", help="device map: name in config/teleop/ or a YAML path")
    parser.add_argument("--device", default="", help="keyboard: a terminal path; *_evdev: /dev/input/eventN")
    parser.add_argument("--joy_topic", default="joy")
    parser.add_argument("--phone_host", default="127.0.0.1", help="0.0.0.0 to serve the phone page on the LAN")
    parser.add_argument("--phone_port", type=int, default=8766)
    parser.add_argument("--phone_certfile", default="")
    parser.add_argument("--phone_keyfile", default="")
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--max_relative_target", type=float, default=0.1, help="rad per command (0 = off)")
    args, rest = parser.parse_known_args(argv)
    return [Parameter(k, value=v) for k, v in vars(args).items()], rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if "--ros-args" in args and not any(a.startswith("--source") for a in args):
            return run_node(TeleopNode, args)
        params, rest = _cli_overrides(args)
        return run_node(lambda: TeleopNode(parameter_overrides=params), rest)
    except (BusError, TeleopError) as exc:  # RobotError is a BusError
        print(f"apprentice teleop: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
