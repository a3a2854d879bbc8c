"""`apprentice calibrate`: calibrate a servo arm into a LeRobot-compatible calibration file.

apprentice calibrate --robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.id=my_arm
apprentice calibrate --teleop.type=so101_leader --teleop.port=/dev/ttyACM1 --teleop.id=my_leader
apprentice calibrate ... --non_interactive --duration_s=15     # no prompts: arm already at mid pose
apprentice calibrate ... --from_file=my_arm.json               # write an existing file into the motors
apprentice calibrate ... --show                                # print what the motors hold
apprentice calibrate ... --setup_motors                        # new motors: one at a time, id + baud rate
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from apprentice.motors import (
    BUS_CLASSES,
    BusError,
    MotorCalibration,
    MotorsBus,
    load_calibration,
    save_calibration,
)
from apprentice.motors.setup import setup_motor
from apprentice.robots.calibrate import default_calibration_path, legacy_calibration_path, run_calibration
from apprentice.robots.definition import RobotDefinition, load_robot


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="apprentice calibrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for prefix, example in (("robot", "so101_follower"), ("teleop", "so101_leader")):
        p.add_argument(
            f"--{prefix}.type",
            dest=f"{prefix}_type",
            help=f"robot definition: a config/robots/ name (e.g. {example}) or a YAML path",
        )
        p.add_argument(f"--{prefix}.port", dest=f"{prefix}_port", help="serial port, e.g. /dev/ttyACM0")
        p.add_argument(
            f"--{prefix}.id",
            dest=f"{prefix}_id",
            default="default",
            help="name of this arm; the file is <calibration dir>/<kind>/<lerobot name>/<id>.json",
        )
    p.add_argument(
        "--calibration_file", help="where to write (default: where the newest LeRobot reads, e.g. robots/so_follower/)"
    )
    p.add_argument(
        "--non_interactive",
        action="store_true",
        help="no prompts: the arm is at its middle pose now; record ranges for --duration_s",
    )
    p.add_argument("--duration_s", type=float, default=15.0, help="recording time without prompts")
    p.add_argument("--from_file", help="write this (LeRobot) calibration file into the motors; no motion needed")
    p.add_argument("--show", action="store_true", help="print the calibration the motors hold and exit")
    p.add_argument(
        "--setup_motors",
        action="store_true",
        help="before assembly: give each new motor (alone on the bus) its id and the bus baud rate",
    )
    return p


def _enter_pressed() -> bool:
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready:
        sys.stdin.readline()
    return bool(ready)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prefix = "robot" if args.robot_type else "teleop"
    robot_type, port, arm_id = (getattr(args, f"{prefix}_{k}") for k in ("type", "port", "id"))
    if not robot_type or not port:
        print(
            "apprentice calibrate: give --robot.type and --robot.port (or --teleop.type and --teleop.port)",
            file=sys.stderr,
        )
        return 2
    try:
        definition = load_robot(robot_type)
        path = args.calibration_file or default_calibration_path(definition, arm_id)
        bus = BUS_CLASSES[definition.vendor](port, definition.motors(), baudrate=definition.baudrate)
        if args.setup_motors:
            return _setup_motors(bus, definition)
        bus.connect()
        try:
            if args.show:
                print(json.dumps({m: asdict(c) for m, c in bus.read_calibration().items()}, indent=4))
                return 0
            if args.from_file:
                calibration = load_calibration(args.from_file)
                bus.disable_torque()
                bus.write_calibration(calibration)
            else:
                calibration = _calibrate(bus, definition, args)
            saved = save_calibration(path, calibration)
        finally:
            bus.disconnect(disable_torque=True)
    except BusError as exc:
        print(f"apprentice calibrate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\napprentice calibrate: interrupted; nothing was saved", file=sys.stderr)
        return 130
    print(f"Calibration of {definition.type} '{arm_id}' saved to {saved}")
    legacy = legacy_calibration_path(definition, arm_id)
    if not args.calibration_file and legacy is not None and legacy.is_file():
        # Both lerobot >= 0.4.3 and apprentice read the new file first; the old one stays for older lerobots.
        print(f"(left as it was: {legacy}, lerobot < 0.4.3's file for this arm; the file above is read first)")
    return 0


def _setup_motors(bus: MotorsBus, definition: RobotDefinition) -> int:
    """LeRobot's motor setup order: from the gripper back to the base, one motor on the bus at a time."""
    bus.connect(handshake=False)
    try:
        for joint in reversed(definition.joints):
            input(f"Connect the controller board to the '{joint.name}' motor only and press ENTER.")
            rate, old_id = setup_motor(bus, joint.name)
            print(
                f"'{joint.name}' motor id set to {joint.id} at {bus.baudrate} baud (was id {old_id} at {rate})",
                flush=True,
            )
    finally:
        bus.disconnect(disable_torque=False)
    print(f"All {definition.type} motors are set up: daisy-chain them and run `apprentice calibrate`.")
    return 0


def _calibrate(bus: MotorsBus, definition: RobotDefinition, args: argparse.Namespace) -> dict[str, MotorCalibration]:
    if args.non_interactive:
        deadline: list[float] = []

        def done() -> bool:
            deadline or deadline.append(time.monotonic() + args.duration_s)
            return time.monotonic() >= deadline[0]

        return run_calibration(bus, definition, wait_for_middle=lambda: None, recording_done=done)

    def show(mins: dict[str, int], pos: dict[str, int], maxes: dict[str, int]) -> None:
        lines = [f"{'JOINT':<15} | {'MIN':>6} | {'POS':>6} | {'MAX':>6}"]
        lines += [f"{n:<15} | {mins[n]:>6} | {pos[n]:>6} | {maxes[n]:>6}" for n in pos]
        print("\n".join(lines) + f"\x1b[{len(lines)}A\r", end="", flush=True)

    def wait_for_middle() -> None:
        input(f"Move {definition.type} to the middle of its range of motion and press ENTER...")
        skipped = f" except {definition.full_turn_joints}" if definition.full_turn_joints else ""
        print(f"Move all joints{skipped} one by one through their entire range. Press ENTER to stop...", flush=True)

    calibration = run_calibration(
        bus, definition, wait_for_middle=wait_for_middle, recording_done=_enter_pressed, on_sample=show
    )
    print("\n" * (len(calibration) + 1))
    return calibration


if __name__ == "__main__":
    sys.exit(main())
