"""Training as a launched process: `apprentice train` with lerobot-train's flags.

    ros2 launch apprentice train.launch.py dataset_root:=~/datasets/reach output_dir:=outputs/train/act
    ros2 launch apprentice train.launch.py dataset_root:=... steps:=20000 extra_args:="--policy.device=cuda"

Flags come from `config` (default config/train.yaml: key -> --key=value), then the arguments here.
Training needs no ROS: this only starts the same command a pip user types.
"""

from __future__ import annotations

import os
import shlex
import sys

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

ARGUMENTS = {
    "dataset_root": ("", "LeRobotDataset v3.0 directory to train on"),
    "output_dir": ("outputs/train/act", "checkpoints go to <output_dir>/checkpoints/<step>/pretrained_model"),
    "steps": ("20000", "optimizer steps"),
    "policy_type": ("", "act | diffusion (default: the config's policy.type)"),
    "config": ("", "flag file; default: <share>/config/train.yaml"),
    "extra_args": ("", 'more flags, e.g. "--policy.device=cuda --batch_size=32"'),
}


def train_process(context) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    config = arg["config"] or os.path.join(get_package_share_directory("apprentice"), "config", "train.yaml")
    with open(config) as f:
        flags = {str(k): v for k, v in (yaml.safe_load(f) or {}).items()}
    if arg["policy_type"]:
        flags["policy.type"] = arg["policy_type"]
    if not arg["dataset_root"]:
        raise RuntimeError("train.launch.py: give dataset_root:=<dataset directory>")
    flags.update({"dataset.root": arg["dataset_root"], "output_dir": arg["output_dir"], "steps": arg["steps"]})
    cmd = [sys.executable, "-m", "apprentice.cli", "train", *(f"--{k}={v}" for k, v in flags.items())]
    cmd += shlex.split(arg["extra_args"])
    return [ExecuteProcess(cmd=cmd, name="train", output="screen")]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=train_process)]
    )
