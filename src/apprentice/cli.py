"""`apprentice` — one entry point; each subcommand lives beside the code it drives.

Subcommands are imported only when used, so `apprentice --version` does not pay for torch or rclpy.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from apprentice import __version__

# name -> (module with `main(argv) -> int`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("apprentice.doctor", "report what is installed (ROS 2, RMW, torch/CUDA, codecs) and how to fix gaps"),
    "dataset": ("apprentice.dataset.cli", "LeRobotDataset v3.0: info | verify | repair | push | pull | visualize"),
    "calibrate": ("apprentice.robots.calibrate_cli", "calibrate a servo arm (LeRobot-compatible calibration file)"),
    "teleop": ("apprentice.nodes.teleop_cli", "teleoperate: leader arm, keyboard, gamepad/Joy or phone -> commands"),
    "sim-bus": ("apprentice.motors.sim_bus_cli", "start a virtual Feetech/Dynamixel servo bus on a pseudo-terminal"),
    "record": ("apprentice.nodes.record_cli", "record episodes from ROS 2 topics into MCAP + LeRobot dataset"),
    "convert": ("apprentice.bag.convert_cli", "convert rosbag2 (MCAP/sqlite3) bags into a LeRobot v3.0 dataset"),
    "train": ("apprentice.train.cli", "train a policy (lerobot-style flags: --policy.type=act ...)"),
    "sim": ("apprentice.sim.cli", "simulated tasks: `sim record` scripted demonstrations"),
    "eval": ("apprentice.sim.eval_cli", "evaluate a policy in simulation (success rate, rewards, videos)"),
    "infer": ("apprentice.nodes.infer_cli", "run a trained policy on a ROS 2 robot"),
    "view": ("apprentice.nodes.viewer_node", "live Foxglove view (ws://127.0.0.1:8765) of a contract's topics"),
    "policy-server": ("apprentice.deploy.remote.cli", "serve a checkpoint to policy nodes on other machines (gRPC)"),
    "learner": ("apprentice.rl.learner_cli", "HIL-SERL learner on the GPU box: transitions in, weights out (gRPC)"),
    "actor": ("apprentice.rl.actor_cli", "HIL-SERL actor in simulation, streaming to a learner (gRPC)"),
    "rl-actor": ("apprentice.nodes.rl_actor_node", "HIL-SERL actor on a ROS 2 robot (contract topics ⇄ learner)"),
    "demo": ("apprentice.demo", "the whole loop on the simulated robot: teleop → record → train → deploy"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apprentice",
        description="ROS 2-native robot learning. Run `apprentice <command> --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"apprentice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args or args[0] not in SUBCOMMANDS:
        parser.parse_args(args or ["--help"])
        return 2
    module_name, _ = SUBCOMMANDS[args[0]]
    module = importlib.import_module(module_name)
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
