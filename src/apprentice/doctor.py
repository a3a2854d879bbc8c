"""`apprentice doctor`: what this machine has for each stage, and the command that fixes each gap."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from apprentice import __version__

SETUP_FIX = "./scripts/setup.sh  (then `source scripts/env.sh`)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _probe(name: str, fn: Callable[[], str], fix: str, required: bool = True) -> Check:
    try:
        return Check(name, True, fn(), required=required)
    except Exception as exc:  # doctor reports every failure instead of stopping at the first
        return Check(name, False, f"{type(exc).__name__}: {exc}".splitlines()[0], fix, required)


def _ros_probe(name: str) -> Callable[[], str]:
    """Run one probe of apprentice.nodes.ros_probe (the ROS imports live in the node layer)."""

    def probe() -> str:
        from apprentice.nodes import ros_probe

        return getattr(ros_probe, name)()

    return probe


def _discovery() -> str:
    rng = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "<unset: SUBNET>")
    return f"ROS_AUTOMATIC_DISCOVERY_RANGE={rng}, ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}"


def _torch() -> str:
    import torch

    cuda = torch.cuda.is_available()
    gpu = f", CUDA {torch.version.cuda} on {torch.cuda.get_device_name(0)}" if cuda else ", CPU only"
    return f"torch {torch.__version__}{gpu}"


def _codecs() -> str:
    import av

    enc = [c for c in ("libsvtav1", "libaom-av1", "libx264", "h264") if _has_codec(av, c, "w")]
    dec = [c for c in ("libdav1d", "libaom-av1", "av1", "h264") if _has_codec(av, c, "r")]
    if "libsvtav1" not in enc:
        raise RuntimeError(f"PyAV {av.__version__} lacks the libsvtav1 encoder (has {enc})")
    return f"PyAV {av.__version__}; encoders {', '.join(enc)}; decoders {', '.join(dec)}"


def _has_codec(av_module, name: str, mode: str) -> bool:
    try:
        av_module.codec.Codec(name, mode)
        return True
    except Exception:  # PyAV raises several types for an unknown codec
        return False


def _module(name: str) -> Callable[[], str]:
    def probe() -> str:
        module = importlib.import_module(name)
        return f"{name} {getattr(module, '__version__', '')}".strip()

    return probe


def _gym_aloha() -> str:
    importlib.import_module("gym_aloha")
    from importlib.metadata import version

    return f"gym-aloha {version('gym-aloha')}"


def _colcon() -> str:
    path = shutil.which("colcon")
    if not path:
        raise FileNotFoundError("colcon not on PATH")
    return path


def run_checks() -> list[Check]:
    return [
        _probe("python", lambda: sys.version.split()[0], "install Python 3.11"),
        _probe("ros2/rclpy", _ros_probe("rclpy_origin"), SETUP_FIX),
        _probe("rmw", _ros_probe("rmw_implementation"), SETUP_FIX),
        _probe("messages", _ros_probe("message_packages"), SETUP_FIX),
        _probe("interfaces", _ros_probe("custom_interfaces"), "./scripts/build.sh, then source scripts/env.sh"),
        _probe("discovery", _discovery, "", required=False),
        _probe("colcon", _colcon, "pip install colcon-common-extensions (or ./scripts/setup.sh)", required=False),
        _probe("torch", _torch, "pip install -e '.[train]'  (CPU: pip install torch)"),
        _probe("video", _codecs, "pip install --upgrade av  (PyAV wheels bundle FFmpeg with SVT-AV1)"),
        _probe("dataset", _module("pyarrow"), "pip install -e ."),
        _probe("mcap", _module("mcap"), "pip install -e ."),
        _probe("feetech", _module("scservo_sdk"), "pip install feetech-servo-sdk", required=False),
        _probe("dynamixel", _module("dynamixel_sdk"), "pip install dynamixel-sdk", required=False),
        _probe("sim", _module("mujoco"), "pip install -e '.[sim]'", required=False),
        _probe("gym-aloha", _gym_aloha, "pip install -e '.[sim]'  (--env.type=aloha)", required=False),
        _probe("kinematics", _module("pinocchio"), "pip install -e '.[teleop]'", required=False),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apprentice doctor", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)
    checks = run_checks()
    if args.json:
        print(json.dumps({"version": __version__, "checks": [asdict(c) for c in checks]}, indent=1))
    else:
        print(f"apprentice {__version__}")
        for check in checks:
            mark = "ok " if check.ok else ("MISSING" if check.required else "optional")
            print(f"  [{mark:^8}] {check.name:<11} {check.detail}")
            if not check.ok and check.fix:
                print(f"  {'':10} {'':<11} fix: {check.fix}")
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0
