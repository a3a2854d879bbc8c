"""The whole loop on the simulated arm, as `apprentice demo` runs it (same nodes, same parameters).

    ros2 launch apprentice sim_demo.launch.py out:=/tmp/apprentice_demo episodes:=50 steps:=1500

1. a sim node, the recorder (recording `episodes` episodes over ROS; it calls `sim/reset` as each
   episode's warm-up/reset phase begins: a new target, the arm back home) and then the scripted
   teleop node (the expert on the leader topics; the recorder's session starts once it publishes):
   bags in <out>/bags, converted into the LeRobotDataset <out>/dataset;
2. when the recorder exits: `apprentice train` (config/train.yaml flags) -> <out>/train;
3. when training exits: a sim node on held-out seeds + the policy node in evaluation mode
   -> <out>/eval/eval_info.json, then the launch shuts down with "demo done: success rate ...".
A stage starts only when the one before it exited 0; otherwise (a failure, a sim or teleop node that
dies mid-stage, or Ctrl-C) the launch stops with one error line naming the stage and exit code 1 —
never "demo done" without a fresh eval_info.json.
Parameters: config/sim_demo.yaml. `apprentice demo` additionally scales training steps to the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit, OnProcessIO
from launch.events import Shutdown
from launch.events.matchers import matches_action
from launch.events.process import ShutdownProcess
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

ARGUMENTS = {
    "out": ("/tmp/apprentice_demo", "output directory: bags/, dataset/, train/, eval/"),
    "episodes": ("50", "demonstrations to record"),
    "episode_time_s": ("3.0", "seconds per recorded episode"),
    "steps": ("1500", "training steps (apprentice demo instead trains until its time budget)"),
    "eval_episodes": ("10", "evaluation episodes"),
    "seed": ("0", "sim seed of the first recorded episode"),
    "eval_seed": ("10000", "sim seed of the first evaluation episode (held-out targets)"),
    "device": ("auto", "training and inference device: auto | cpu | cuda"),
}
SIM_READY = b"sim 'reach'"  # the sim node's start-up log line: it publishes from then on
RECORDER_WAITING = b"waiting for publishers"  # the recorder is subscribed and waits for the teleop

RECORDER_STOP_S = "60"  # seconds between SIGINT and SIGTERM for the recorder (see the recorder Node)


def share(*parts: str) -> str:
    return os.path.join(get_package_share_directory("apprentice"), *parts)


def when_ready(sim: Node, actions: list) -> RegisterEventHandler:
    """Start ``actions`` once ``sim`` has logged that it runs (once, however often it logs)."""
    fired = []

    def on_output(event) -> list | None:
        if fired or SIM_READY not in event.text:
            return None
        fired.append(True)
        return actions

    return RegisterEventHandler(OnProcessIO(target_action=sim, on_stderr=on_output, on_stdout=on_output))


class DemoError(RuntimeError):
    """A stage of the demo did not finish; launch logs the message and exits 1."""


def after(stage: str, action, then, stopped: list) -> RegisterEventHandler:
    """When ``action`` exits: ``then()`` (the next stage's actions) if it exited 0 and the launch is not
    shutting down, else stop the demo, naming the stage (raising makes `ros2 launch` exit 1) — unless
    an earlier failure in ``stopped`` already did."""

    def on_exit(event, context) -> list | None:
        if event.returncode == 0 and not context.is_shutdown:
            return then()
        if stopped:
            return None
        why = "the launch was interrupted" if context.is_shutdown else f"exit code {event.returncode}"
        stopped.append(stage)
        raise DemoError(f"sim_demo: {stage} did not finish ({why}); the demo stopped there")

    return RegisterEventHandler(OnProcessExit(target_action=action, on_exit=on_exit))


def needed_until(name: str, action, finished: list, stopped: list) -> RegisterEventHandler:
    """A helper process (a sim, the scripted teleop) that exits before its stage has ``finished`` would
    leave the stage waiting for ever, or the launch idle with exit 0: stop the demo, naming it."""

    def on_exit(event, context) -> None:
        if finished or stopped or context.is_shutdown:
            return None
        stopped.append(name)
        raise DemoError(f"sim_demo: {name} exited (code {event.returncode}) before its stage finished")

    return RegisterEventHandler(OnProcessExit(target_action=action, on_exit=on_exit))


def evaluation_result(path: str, since: float) -> str | None:
    """'<rate> over <n> episodes' from an eval_info.json written after ``since``; None if there is none."""
    try:
        if os.path.getmtime(path) < since:
            return None  # an earlier run's file: this evaluation wrote nothing
        with open(path) as f:
            aggregated = json.load(f)["overall"]
    except (OSError, ValueError, KeyError):
        return None
    return f"{aggregated['success_rate']:.0%} over {aggregated['n_episodes']} episodes"


def pipeline(context) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    out = os.path.abspath(os.path.expanduser(arg["out"]))
    params = share("config", "sim_demo.yaml")
    contract = share("config", "contracts", "sim_reach.yaml")
    episodes = int(arg["episodes"])
    stopped: list[str] = []  # the stage or process whose failure stopped the demo (reported once)

    def sim(seed: int) -> Node:
        return Node(
            package="apprentice",
            executable="sim_node",
            name="sim",
            output="screen",
            parameters=[params, {"seed": seed}],
        )

    teleop = Node(
        package="apprentice",
        executable="scripted_teleop_node",
        name="scripted_teleop",
        output="screen",
        parameters=[params],
    )

    # Evaluation: stage 3, started when training exits.
    eval_sim = sim(int(arg["eval_seed"]))
    checkpoint = os.path.join(out, "train", "checkpoints", "last", "pretrained_model")
    eval_info = os.path.join(out, "eval", "eval_info.json")
    policy = Node(
        package="apprentice",
        executable="policy_node",
        name="policy_node",
        output="screen",
        parameters=[
            params,
            {
                "policy_path": checkpoint,
                "contract": contract,
                "device": arg["device"],
                "eval_episodes": int(arg["eval_episodes"]),
                "eval_output": eval_info,
            },
        ],
    )
    eval_started, eval_finished = [0.0], []

    def evaluation() -> list:
        eval_started[0] = time.time()
        return [
            eval_sim,
            when_ready(eval_sim, [policy]),
            needed_until("the evaluation sim node", eval_sim, eval_finished, stopped),
            after("evaluation", policy, report, stopped),
        ]

    def report() -> list:
        eval_finished.append(True)
        result = evaluation_result(eval_info, eval_started[0])
        if result is None:
            stopped.append("evaluation")
            raise DemoError(f"sim_demo: the evaluation did not finish: policy_node exited without writing {eval_info}")
        return [
            LogInfo(msg=f"demo done: success rate {result}; details in {eval_info}"),
            EmitEvent(event=Shutdown(reason="demo finished")),
        ]

    # Training: stage 2, started when the last episode is recorded.
    with open(share("config", "train.yaml")) as f:
        flags = {str(k): v for k, v in (yaml.safe_load(f) or {}).items()}
    flags.update(
        {
            "dataset.root": os.path.join(out, "dataset"),
            "output_dir": os.path.join(out, "train"),
            "steps": arg["steps"],
            "save_freq": arg["steps"],
        }
    )
    if arg["device"] != "auto":
        flags["policy.device"] = arg["device"]
    train = ExecuteProcess(
        cmd=[sys.executable, "-m", "apprentice.cli", "train", *(f"--{k}={v}" for k, v in flags.items())],
        name="train",
        output="screen",
    )
    training = [train, after("training", train, evaluation, stopped)]

    # Recording: stage 1. The teleop starts once the recorder waits for its topics (see above).
    record_sim = sim(int(arg["seed"]))
    recorder = Node(
        package="apprentice",
        executable="recorder_node",
        name="recorder",
        output="screen",
        # On Ctrl-C the recorder saves the episode in progress and converts it (video encoding): give it
        # RECORDER_STOP_S, not launch's default 5 s before SIGTERM (a killed conversion reruns on restart).
        sigterm_timeout=RECORDER_STOP_S,
        parameters=[
            params,
            {
                "contract": contract,
                "root": os.path.join(out, "dataset"),
                "bags_dir": os.path.join(out, "bags"),
                "num_episodes": episodes,
                "episode_time_s": float(arg["episode_time_s"]),
            },
        ],
    )
    started, recorded = [], []

    def on_recorder_output(event) -> list | None:
        if started or RECORDER_WAITING not in event.text:
            return None
        started.append(True)
        return [teleop]

    stop_recording = [
        EmitEvent(event=ShutdownProcess(process_matcher=matches_action(action))) for action in (teleop, record_sim)
    ]
    return [
        record_sim,
        when_ready(record_sim, [recorder]),
        RegisterEventHandler(
            OnProcessIO(target_action=recorder, on_stderr=on_recorder_output, on_stdout=on_recorder_output)
        ),
        needed_until("the sim node", record_sim, recorded, stopped),
        needed_until("the scripted teleop node", teleop, recorded, stopped),
        RegisterEventHandler(OnProcessExit(target_action=recorder, on_exit=lambda *_: recorded.append(True))),
        RegisterEventHandler(OnProcessExit(target_action=recorder, on_exit=stop_recording)),
        after("recording", recorder, lambda: training, stopped),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()
        ]
        + [OpaqueFunction(function=pipeline)]
    )
