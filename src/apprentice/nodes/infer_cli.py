"""`apprentice infer`: flags -> the policy node's ROS parameters, then the node (nodes/policy_node.py).

No rclpy at import: `apprentice infer --help` works before `source scripts/env.sh`, and a shell that
lacks the ROS setup gets one line saying what to source.

    apprentice infer --policy.path=outputs/train/act/checkpoints/last/pretrained_model --contract=sim_reach --enable
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from apprentice.pretrained_path import PretrainedPathError, check_pretrained_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apprentice infer", description="Run a trained policy on a ROS 2 robot.")
    parser.add_argument(
        "--policy.path",
        "--policy-path",
        dest="policy_path",
        help="checkpoint directory (pretrained_model/ with config.json + model.safetensors)",
    )
    # Defaults are the node's own (None = not given): only flags the user typed become -p overrides, so
    # they win over --params-file and nothing else does.
    parser.add_argument("--contract", help="contract YAML or a name in config/contracts/ (node default: sim_reach)")
    parser.add_argument("--device", help="cpu | cuda | auto (node default: auto)")
    parser.add_argument("--server", help="host:port of an `apprentice policy-server` (instead of --policy.path)")
    parser.add_argument("--server-token-file", help="file holding the policy server's access token")
    parser.add_argument("--server-tls-ca", help="PEM file to trust: connect to the policy server over TLS")
    parser.add_argument("--task", help="language instruction (default: the contract's task)")
    parser.add_argument(
        "--task-topic", help="std_msgs/String topic that changes the task between chunks (node default: task)"
    )
    parser.add_argument(
        "--rtc.enabled", "--rtc", dest="rtc_enabled", action="store_true", default=None,
        help="real-time chunking (with --mode=async; flow-matching policies such as smolvla)",
    )
    parser.add_argument("--rtc.execution_horizon", dest="rtc_execution_horizon", type=int)
    parser.add_argument("--rtc.max_guidance_weight", dest="rtc_max_guidance_weight", type=float)
    parser.add_argument("--rtc.prefix_attention_schedule", dest="rtc_prefix_attention_schedule",
                        choices=["ZEROS", "ONES", "LINEAR", "EXP"])
    parser.add_argument("--mode", choices=["sync", "async", "ensemble", "policy"], help="node default: sync")
    parser.add_argument("--n-action-steps", type=int)
    parser.add_argument("--max-relative-step", type=float, help="radians per tick; 0 = off")
    parser.add_argument("--command-topic")
    parser.add_argument(
        "--enable", action="store_true", default=None, help="start commanding at once (else call ~/enable)"
    )
    parser.add_argument("--eval-episodes", type=int, help="run N evaluation episodes and exit")
    parser.add_argument("--eval-episode-time-s", type=float)
    parser.add_argument("--eval-output")
    parser.add_argument(
        "--follow-recorder",
        action="store_true",
        default=None,
        help="drive only while the recorder records (evaluation recording; what `apprentice record -p` starts)",
    )
    parser.add_argument("--params-file", help="ROS parameters YAML (e.g. config/infer.yaml)")
    return parser


def ros_args(argv: Sequence[str]) -> list[str]:
    """`apprentice infer` flags -> `--ros-args -p name:=value ...` (the node's own parameters)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(list(argv))
    if args.policy_path is None and args.params_file is None and args.server is None:
        parser.error("--policy.path is required (or --server, or a --params-file that sets policy_path)")
    if args.policy_path is not None:
        try:
            check_pretrained_dir(args.policy_path)
        except PretrainedPathError as exc:
            parser.exit(1, f"apprentice infer: error: {exc}\n")
    values = {
        "policy_path": args.policy_path,
        "server": args.server,
        "server_token_file": None if args.server_token_file is None else os.path.abspath(args.server_token_file),
        "server_tls_ca": None if args.server_tls_ca is None else os.path.abspath(args.server_tls_ca),
        "contract": args.contract,
        "device": args.device,
        "task": args.task,
        "task_topic": args.task_topic,
        "rtc_enabled": args.rtc_enabled,
        "rtc_execution_horizon": args.rtc_execution_horizon,
        "rtc_max_guidance_weight": args.rtc_max_guidance_weight,
        "rtc_prefix_attention_schedule": args.rtc_prefix_attention_schedule,
        "mode": args.mode,
        "n_action_steps": args.n_action_steps,
        "max_relative_step": args.max_relative_step,
        "command_topic": args.command_topic,
        "enabled": args.enable,
        "eval_episodes": args.eval_episodes,
        "eval_episode_time_s": args.eval_episode_time_s,
        "eval_output": None if args.eval_output is None else os.path.abspath(args.eval_output),
        "follow_recorder": args.follow_recorder,
    }
    ros = ["--ros-args"]
    if args.params_file:
        ros += ["--params-file", args.params_file]
    for name, value in values.items():
        if value is None or value == "":
            continue  # not given (or empty, which does not parse): the params file's or the node's default
        # Values are parsed as YAML: JSON-quote strings so a task like "pick: red" stays one string.
        text = (
            str(value).lower()
            if isinstance(value, bool)
            else json.dumps(value)
            if isinstance(value, str)
            else str(value)
        )
        ros += ["-p", f"{name}:={text}"]
    if rest and rest[0] == "--ros-args":
        rest = rest[1:]
    return ros + rest


def main(argv: Sequence[str] | None = None) -> int:
    args = ros_args(list(sys.argv[1:] if argv is None else argv))
    from apprentice.nodes.ros_probe import missing_ros

    if (problem := missing_ros("apprentice infer")) is not None:
        print(problem, file=sys.stderr)
        return 1
    from apprentice.nodes.policy_node import main as node_main

    return node_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
