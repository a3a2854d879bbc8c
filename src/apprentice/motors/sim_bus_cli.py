"""`apprentice sim-bus`: a virtual Feetech/Dynamixel servo arm on a pseudo-terminal, for manual play.

    apprentice sim-bus --robot.type=so101_follower                      # prints the /dev/pts path
    apprentice sim-bus --robot.type=so101_leader --motion=sine --link=/tmp/ttyLEADER
    apprentice calibrate --robot.type=so101_follower --robot.port=/tmp/ttyLEADER ...

Any program that opens a serial port (LeRobot, the vendor tools' Python SDKs, our driver node) talks to it
as to a real arm. Runs until Ctrl-C; `--status_s` prints the joints' present positions periodically.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from apprentice.motors.errors import BusError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="apprentice sim-bus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--robot.type",
        dest="robot_type",
        default="so101_follower",
        help="robot definition (config/robots/<type>.yaml or a YAML path)",
    )
    p.add_argument(
        "--motion",
        choices=("none", "sine"),
        default="none",
        help="sine: joints sway by hand while torque is off (a leader being waved)",
    )
    p.add_argument("--amplitude", type=float, default=300.0, help="sine amplitude in ticks")
    p.add_argument("--period_s", type=float, default=4.0, help="sine period")
    p.add_argument("--tau_s", type=float, default=0.03, help="first-order time constant toward Goal_Position")
    p.add_argument("--link", type=Path, help="also expose the port as this symlink (e.g. /tmp/ttyARM)")
    p.add_argument("--status_s", type=float, default=0.0, help="print present positions every N s (0 = off)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Robot definitions build on motors; importing them only here keeps motors free of robot knowledge.
    from apprentice.robots.definition import load_robot
    from apprentice.robots.virtual_arm import make_virtual_arm

    try:
        definition = load_robot(args.robot_type)
        virtual = make_virtual_arm(
            definition, motion=args.motion, amplitude=args.amplitude, period_s=args.period_s, tau_s=args.tau_s
        )
    except BusError as exc:
        print(f"apprentice sim-bus: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with virtual:
        if args.link:
            if args.link.is_symlink():
                args.link.unlink()
            os.symlink(virtual.port, args.link)
        print(
            json.dumps(
                {
                    "port": virtual.port,
                    "link": str(args.link or ""),
                    "robot_type": definition.type,
                    "protocol": definition.vendor,
                    "motors": {j.name: j.id for j in definition.joints},
                }
            ),
            flush=True,
        )
        try:
            while not stop.wait(args.status_s or 0.5):
                if args.status_s:
                    for motor in virtual.motors:
                        motor.read(0, 1)  # advances the motion and refreshes Present_Position
                    print(
                        json.dumps({j.name: virtual.motor(j.id).get("Present_Position") for j in definition.joints}),
                        flush=True,
                    )
        except KeyboardInterrupt:
            pass
        finally:
            if args.link and args.link.is_symlink():
                args.link.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
