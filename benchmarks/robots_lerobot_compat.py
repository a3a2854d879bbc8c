"""Interchangeability check of the new robots against real lerobot on our virtual servo buses: lerobot's
own omx_follower, omx_leader, lekiwi and bi_so_follower classes (another interpreter) connect to the same
ptys, use the calibration files we wrote (and we load the ones they write), configure the motors, and
report their observations. The bimanual check writes where we write by default and lets lerobot look in its
own default folders (robots/so_follower/<id>_left.json since lerobot 0.4.3). Prints one JSON object.

    python benchmarks/robots_lerobot_compat.py --lerobot-python /path/to/venv-with-lerobot/bin/python
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from apprentice.motors import BUS_CLASSES, load_calibration, save_calibration
from apprentice.robots import Arm, calibration_root, load_definition, load_robot, radians_to_lerobot, run_calibration
from apprentice.robots.omniwheel import OmniwheelKinematics
from apprentice.robots.virtual_arm import make_virtual_robot

LEROBOT_SIDE = """
import json, sys
from pathlib import Path
import dynamixel_sdk.port_handler, scservo_sdk.port_handler
# Timing only, never a byte: the SDKs wait ~2 x 16 ms for a status packet, and the virtual motors answer
# from another process that a loaded 2-core machine may not schedule that soon (see the README's pty notes).
dynamixel_sdk.port_handler.LATENCY_TIMER = scservo_sdk.port_handler.LATENCY_TIMER = 250
kind, port, cal_dir, robot_id = sys.argv[1:5]
cal_dir = Path(cal_dir) if cal_dir else None  # "" = lerobot's own default folder under $HF_LEROBOT_CALIBRATION
out = {}
if kind == "omx_follower":
    from lerobot.robots.omx_follower import OmxFollower as Cls, OmxFollowerConfig as Cfg
    robot = Cls(Cfg(port=port, id=robot_id, calibration_dir=cal_dir))
elif kind == "omx_leader":
    from lerobot.teleoperators.omx_leader import OmxLeader as Cls, OmxLeaderConfig as Cfg
    robot = Cls(Cfg(port=port, id=robot_id, calibration_dir=cal_dir))
elif kind == "lekiwi":
    from lerobot.robots.lekiwi import LeKiwi, LeKiwiConfig
    robot = LeKiwi(LeKiwiConfig(port=port, id=robot_id, calibration_dir=cal_dir, cameras={}))
else:
    from lerobot.robots.bi_so_follower import BiSOFollower, BiSOFollowerConfig
    from lerobot.robots.so_follower import SOFollowerConfig
    left, right = port.split(",")
    robot = BiSOFollower(BiSOFollowerConfig(id=robot_id, calibration_dir=cal_dir,
        left_arm_config=SOFollowerConfig(port=left), right_arm_config=SOFollowerConfig(port=right)))
out["calibration_found"] = bool(robot.calibration) if hasattr(robot, "calibration") else None
robot.connect(calibrate=True)  # calibrates (lerobot's way) only when the file does not match the motors
out["is_calibrated"] = robot.is_calibrated
out["values"] = robot.get_action() if kind == "omx_leader" else robot.get_observation()
if kind == "lekiwi":
    robot.send_action({**{k: v for k, v in out["values"].items() if k.endswith(".pos")},
                       "x.vel": 0.1, "y.vel": 0.05, "theta.vel": 30.0})
    out["wheel_goal_raw"] = robot.bus.sync_read("Goal_Velocity", robot.base_motors)
    robot.stop_base()
robot.disconnect()
print(json.dumps(out))
"""


def lerobot(python: str, kind: str, port: str, cal_dir: Path | None, robot_id: str) -> dict:
    """lerobot's `kind` on `port`: files from `cal_dir`, or (None) from its default folders under the
    HF_LEROBOT_CALIBRATION of this process's environment."""
    proc = subprocess.run([python, "-c", LEROBOT_SIDE, kind, port, str(cal_dir or ""), robot_id],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode:
        sys.exit(f"lerobot {kind} failed on our virtual bus:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def registers(virtual, names: tuple[str, ...]) -> dict[int, dict[str, int]]:
    return {m.id: {r: m.get(r) for r in names if r in m.spec.table} for bus in virtual.buses for m in bus.motors}


def ours_vs_lerobot(values: dict, definition, calibration, positions: np.ndarray, prefix: str = "") -> float:
    """Largest gap between lerobot's `<motor>.pos` and ours converted to lerobot's units."""
    expected = radians_to_lerobot(definition, calibration, positions, use_degrees=False)
    return max(abs(values[f"{prefix}{n}.pos"] - e) for n, e in zip(definition.joint_names, expected))


def check_omx(python: str, kind: str, tmp: Path) -> dict:
    definition = load_robot(kind)
    report = {}
    cal_dir = tmp / kind
    virtual = make_virtual_robot(definition)
    port = virtual.start()
    try:
        # lerobot first, no file: it writes its factory calibration; ours must be the same, to the byte.
        theirs = lerobot(python, kind, port, cal_dir, "fresh")
        their_file = cal_dir / "fresh.json"
        bus = BUS_CLASSES["dynamixel"](port, definition.motors())
        bus.connect()
        ours = run_calibration(bus, definition, wait_for_middle=lambda: None, recording_done=lambda: True)
        bus.disconnect()
        report["lerobot_file_equals_ours"] = load_calibration(their_file) == ours
        report["same_text"] = save_calibration(tmp / "ours.json", ours).read_text() == their_file.read_text()
        # Then ours configures, lerobot reconnects with our file: no recalibration, same registers.
        save_calibration(cal_dir / "ours.json", ours)
        arm = Arm(definition, port, calibration=ours)
        arm.connect()
        time.sleep(0.5)  # the leader's gripper reaches the open position it is held at
        positions = arm.read_positions()
        arm.disconnect(disable_torque=False)  # lerobot's leader keeps its trigger held as well
        names = ("Operating_Mode", "Drive_Mode", "Homing_Offset", "Position_P_Gain", "Position_D_Gain",
                 "Current_Limit", "Min_Position_Limit", "Max_Position_Limit")
        ours_regs = registers(virtual, names)
        theirs = lerobot(python, kind, port, cal_dir, "ours")
        report["lerobot_is_calibrated_with_our_file"] = theirs["is_calibrated"]
        report["same_registers_after_configure"] = registers(virtual, names) == ours_regs
        report["max_position_gap"] = round(ours_vs_lerobot(theirs["values"], definition, ours, positions), 4)
    finally:
        virtual.stop()
    return report


def check_lekiwi(python: str, tmp: Path) -> dict:
    definition = load_robot("lekiwi")
    virtual = make_virtual_robot(definition, motion="sine")
    port = virtual.start()
    try:
        bus = BUS_CLASSES["feetech"](port, definition.motors())
        bus.connect()
        deadline = time.monotonic() + 4.5
        ours = run_calibration(bus, definition, wait_for_middle=lambda: None,
                               recording_done=lambda: time.monotonic() > deadline, period_s=0.005)
        bus.disconnect()
        for motor in virtual.buses[0].motors:
            motor.hand = None  # the operator lets go
        save_calibration(tmp / "lekiwi" / "mine.json", ours)
        arm = Arm(definition, port, calibration=ours)
        arm.connect()
        positions = arm.read_positions()
        arm.disconnect()
        theirs = lerobot(python, "lekiwi", port, tmp / "lekiwi", "mine")
        kinematics = OmniwheelKinematics(definition.base)
        wheel = kinematics.wheel_speeds(0.1, 0.05, math.radians(30))
        our_raw = [round(w * 4095 / (2 * math.pi)) for w in wheel]
        their_raw = [theirs["wheel_goal_raw"][n] for n in definition.wheel_names]
        return {
            "lerobot_is_calibrated_with_our_file": theirs["is_calibrated"],
            "motors_in_file": len(ours),
            "max_position_gap": round(ours_vs_lerobot(theirs["values"], definition, ours, positions), 4),
            "wheel_goal_raw_lerobot": their_raw,
            "wheel_goal_raw_ours": our_raw,
            "base_velocity_lerobot": [theirs["values"][k] for k in ("x.vel", "y.vel", "theta.vel")],
        }
    finally:
        virtual.stop()


def check_bimanual(python: str, tmp: Path) -> dict:
    definition = load_definition("bi_so101_follower")
    virtual = make_virtual_robot(definition, motion="sine")
    ports = virtual.start().split(",")
    try:
        calibrations = {}
        for side, arm_definition, port in zip(definition.arms, definition.arms.values(), ports):
            bus = BUS_CLASSES["feetech"](port, arm_definition.motors())
            bus.connect()
            deadline = time.monotonic() + 4.5
            calibrations[side] = run_calibration(bus, arm_definition, wait_for_middle=lambda: None,
                                                 recording_done=lambda d=deadline: time.monotonic() > d,
                                                 period_s=0.005)
            bus.disconnect()
            # Where we write by default; lerobot must find it there with no calibration_dir given.
            save_calibration(definition.calibration_paths("duo")[side], calibrations[side])
        for bus in virtual.buses:
            for motor in bus.motors:
                motor.hand = None
        theirs = lerobot(python, "bi_so_follower", ",".join(ports), None, "duo")
        root = calibration_root()
        return {
            "files": sorted(str(p.relative_to(root)) for p in root.rglob("*.json")),
            "lerobot_is_calibrated_with_our_files": theirs["is_calibrated"],
            "lerobot_keys_match_our_joints": sorted(k.removesuffix(".pos") for k in theirs["values"])
            == sorted(definition.joint_names),
        }
    finally:
        virtual.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lerobot-python", required=True, help="an interpreter that can import lerobot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Ours and lerobot's default calibration folders, both under this run's temporary directory.
        os.environ["HF_LEROBOT_CALIBRATION"] = str(root / "calibration")
        report = {
            "omx_follower": check_omx(args.lerobot_python, "omx_follower", root),
            "omx_leader": check_omx(args.lerobot_python, "omx_leader", root),
            "lekiwi": check_lekiwi(args.lerobot_python, root),
            "bi_so101_follower": check_bimanual(args.lerobot_python, root),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
