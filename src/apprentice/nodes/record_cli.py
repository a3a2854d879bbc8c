"""`apprentice record`: flags (lerobot-record's and the seed's `control_robot.py record` spellings) -> the
recorder node's parameters, then the node (nodes/recorder_node.py).

No rclpy at import: `apprentice record --help` works before `source scripts/env.sh`, and a shell without
the ROS setup gets one line saying what to source.

    apprentice record --contract config/contracts/sim_reach.yaml --dataset.root data/reach \\
        --dataset.num_episodes 10 --dataset.episode_time_s 20 --dataset.reset_time_s 5
    apprentice record --robot-path so101 --fps 30 --root data --repo-id user/so101_test --tags so101 tutorial \\
        --warmup-time-s 5 --episode-time-s 60 --reset-time-s 10 --num-episodes 50 [-p .../pretrained_model]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apprentice.pretrained_path import PretrainedPathError, check_pretrained_dir

_STOPPING = threading.Event()  # the session is over: the policy node's exit is expected


class RecordArgsError(ValueError):
    """A record flag that cannot be honoured (names the flag and what to pass)."""


@dataclass
class RecordRun:
    """What one `apprentice record` command runs: the recorder's parameters, and what comes with it."""

    parameters: dict[str, Any]  # recorder node parameters, by the names the node declares
    ros_args: list[str] = field(default_factory=list)
    policy_path: Path | None = None  # -p: a policy node drives while the recorder records
    policy_params_file: str | None = None  # its parameters (apprentice infer --params-file)
    tags: list[str] = field(default_factory=list)  # the dataset card's tags (as lerobot's push_to_hub)
    repo_id: str | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apprentice record",
        description="Record episodes from ROS 2 topics into MCAP bags and a LeRobot v3.0 dataset.",
        epilog="Flags after --ros-args go to ROS (e.g. --ros-args -p keyboard:=false).",
    )
    parser.add_argument("--contract", help="contract YAML or a name in config/contracts/")
    parser.add_argument(
        "--robot-path",
        "--robot.type",
        dest="robot",
        help="a robot YAML or type (so101, so101_follower, ...): records with the shipped contract for that robot",
    )
    parser.add_argument("--fps", type=int, help="checked against the contract's fps (the contract sets it)")
    parser.add_argument("--dataset.root", dest="dataset_root", help="dataset directory")
    parser.add_argument("--root", dest="seed_root", help="parent directory: the dataset goes to <root>/<repo-id>")
    parser.add_argument("--dataset.repo_id", "--repo-id", dest="repo_id", help="owner/name, for the later push")
    parser.add_argument("--dataset.tags", "--tags", dest="tags", nargs="+", default=[], help="dataset card tags")
    parser.add_argument(
        "--dataset.num_episodes",
        "--num-episodes",
        dest="num_episodes",
        type=int,
        default=0,
        help="episodes to record (0 = until Esc)",
    )
    parser.add_argument(
        "--dataset.episode_time_s", "--episode-time-s", dest="episode_time_s", type=float, default=60.0
    )
    parser.add_argument("--dataset.reset_time_s", "--reset-time-s", dest="reset_time_s", type=float, default=60.0)
    parser.add_argument("--warmup_time_s", "--warmup-time-s", dest="warmup_time_s", type=float, default=0.0)
    parser.add_argument("--dataset.single_task", dest="task", default="", help="task (default: the contract's)")
    parser.add_argument("--dataset.vcodec", dest="vcodec", default="libsvtav1", choices=["libsvtav1", "h264"])
    parser.add_argument("--bags_dir", default="", help="where episode bags go (default: <root>_bags)")
    parser.add_argument("--topics", nargs="*", default=[], help="extra topics to record into the bags")
    parser.add_argument("--reset_service", default="", help="std_srvs/Trigger to call when a reset begins")
    parser.add_argument("--compression", default="none", choices=["none", "zstd", "lz4"], help="MCAP chunks")
    parser.add_argument("--resume", action="store_true", help="add episodes to an existing dataset")
    parser.add_argument(
        "--services_only", action="store_true", help="do not run timed episodes; wait for recorder/* service calls"
    )
    parser.add_argument(
        "--sentry_window_s",
        type=float,
        default=0.0,
        help="sentry mode: keep the last N s, save them only on a trigger (→, recorder/stop_episode, topic)",
    )
    parser.add_argument("--sentry_trigger_topic", default="", help="std_msgs/Bool; a rising edge saves (sentry)")
    parser.add_argument(
        "-p",
        "--policy.path",
        "--pretrained-policy-name-or-path",
        dest="policy_path",
        help="evaluation recording: this pretrained_model/ directory drives (policy node with follow_recorder)",
    )
    parser.add_argument(
        "--policy.params_file",
        "--policy-params-file",
        dest="policy_params_file",
        help="with -p: the policy node's ROS parameters YAML (e.g. config/infer.yaml: robot limits, device, timeouts)",
    )
    return parser


def contract_for_robot(robot: str) -> str:
    """The shipped contract recording this robot: `so101` / `so101_follower` / a robot YAML -> its contract."""
    from apprentice.contract import ContractError, load_contract
    from apprentice.resources import config_path
    from apprentice.robots import RobotError, load_robot

    candidates = [robot] if Path(robot).suffix in (".yaml", ".yml") else [robot, f"{robot}_follower"]
    errors = []
    for candidate in candidates:
        try:
            robot_type = load_robot(candidate).type
            break
        except RobotError as exc:
            errors.append(str(exc))
    else:
        raise RecordArgsError(f"--robot-path {robot}: {errors[-1]}")
    matches = []
    for path in sorted(config_path("contracts").glob("*.yaml")):
        try:
            if load_contract(path).robot_type == robot_type:
                matches.append(path)
        except ContractError:
            continue
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(p.stem for p in matches)
        raise RecordArgsError(
            f"--robot-path {robot}: robot type {robot_type} has {found} shipped contract(s) in "
            f"{config_path('contracts')}; pass --contract with the topics to record"
        )
    return str(matches[0])


def parse_record_args(argv: Sequence[str]) -> RecordRun:
    """`apprentice record` arguments -> a RecordRun; argparse errors exit 2, others raise RecordArgsError."""
    argv = list(argv)
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    # Before argparse: `-p` is ours (the policy), `--ros-args -p name:=value` is ROS's.
    parser = build_parser()
    args, rest = parser.parse_known_args(argv[:split])
    ros_args = rest + argv[split:]
    if args.contract is None and args.robot is None:
        parser.error("pass --contract (a contract YAML or name) or --robot-path (a robot YAML or type)")
    contract = args.contract or contract_for_robot(args.robot)
    if args.fps is not None:
        from apprentice.contract import load_contract

        fps = load_contract(contract).fps
        if args.fps != fps:
            raise RecordArgsError(
                f"--fps {args.fps}: contract {contract} records at {fps} fps; set fps: {args.fps} in a copy of "
                "the contract and pass it with --contract"
            )
    if args.dataset_root and args.seed_root:
        parser.error("--dataset.root is the dataset directory and --root its parent (with --repo-id): pass one")
    if args.dataset_root:
        root = args.dataset_root
    elif args.seed_root:
        root = str(Path(args.seed_root) / args.repo_id) if args.repo_id else args.seed_root
    elif args.repo_id:
        from apprentice.dataset.hub import default_root

        root = str(default_root(args.repo_id))  # as lerobot-record: $HF_LEROBOT_HOME/<repo_id>
    else:
        parser.error("pass --dataset.root DIR (or --root DIR --repo-id OWNER/NAME)")
    policy_path = None
    if args.policy_path is not None:
        try:
            policy_path = check_pretrained_dir(args.policy_path, "-p")
        except PretrainedPathError as exc:
            raise RecordArgsError(str(exc)) from None
    parameters: dict[str, Any] = {
        "contract": contract,
        "root": root,
        "num_episodes": args.num_episodes,
        "episode_time_s": args.episode_time_s,
        "reset_time_s": args.reset_time_s,
        "warmup_time_s": args.warmup_time_s,
        "task": args.task,
        "vcodec": args.vcodec,
        "bags_dir": args.bags_dir,
        "reset_service": args.reset_service,
        "compression": args.compression,
        "resume": args.resume,
        "autostart": not args.services_only,
        "exit_when_done": not args.services_only,
        "sentry_window_s": args.sentry_window_s,
        "sentry_trigger_topic": args.sentry_trigger_topic,
    }
    if args.topics:
        parameters["extra_topics"] = list(args.topics)
    if args.policy_params_file and policy_path is None:
        parser.error("--policy.params_file configures the policy of -p: pass -p too")
    return RecordRun(parameters, ros_args, policy_path, args.policy_params_file, list(args.tags), args.repo_id)


def evaluation_contract(run: RecordRun) -> Path:
    """The contract with `action` read from its command topic, written beside the bags.

    In an evaluation recording nobody holds a leader arm: the action is what the policy commanded (as
    lerobot-record stores it with --policy.path) — radians in the action's joint order on the command
    topic, stored in the action's units."""
    import yaml

    from apprentice.bag.recording import RecordConfig
    from apprentice.contract import load_contract, resolve_contract

    path = resolve_contract(run.parameters["contract"])
    contract = load_contract(path)
    data = yaml.safe_load(path.read_text())
    action = {k: v for k, v in data["action"].items() if k in ("key", "names", "units", "max_age_s", "dtype")}
    data["action"] = {**action, "topic": contract.command_topic, "type": contract.command_type}
    config = RecordConfig(root=Path(run.parameters["root"]), bags_dir=run.parameters["bags_dir"] or None)
    assert config.bags_dir is not None
    config.bags_dir.mkdir(parents=True, exist_ok=True)
    out = config.bags_dir / "evaluation_contract.yaml"
    out.write_text(f"# {path} with the action taken from its command topic (apprentice record -p)\n"
                   + yaml.safe_dump(data, sort_keys=False))
    load_contract(out)  # what the recorder will load: fail here, naming the file, not inside the node
    return out


def policy_command(run: RecordRun) -> list[str]:
    """The policy node that drives during recorded episodes (`apprentice infer ... --follow-recorder`)."""
    assert run.policy_path is not None
    cmd = [sys.executable, "-m", "apprentice.nodes.infer_cli", f"--policy.path={run.policy_path}",
           f"--contract={run.parameters['contract']}", "--follow-recorder"]
    if run.parameters["task"]:
        cmd.append(f"--task={run.parameters['task']}")
    if run.policy_params_file:
        cmd.append(f"--params-file={run.policy_params_file}")  # flags above still win, as in apprentice infer
    return cmd


def _die_with_parent() -> None:
    """In the child: SIGTERM when `apprentice record` dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _start_policy(command: list[str]) -> subprocess.Popen[bytes]:
    """Start the policy node; if it dies while recording, stop the session (SIGINT saves the episode)."""
    policy = subprocess.Popen(command, preexec_fn=_die_with_parent)

    def watch() -> None:
        if policy.wait() != 0 and not _STOPPING.is_set():
            print(f"apprentice record: the policy node exited with {policy.returncode}; stopping", file=sys.stderr)
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    return policy


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run = parse_record_args(list(sys.argv[1:] if argv is None else argv))
    except RecordArgsError as exc:
        print(f"apprentice record: error: {exc}", file=sys.stderr)
        return 1
    from apprentice.nodes.ros_probe import missing_ros

    if (problem := missing_ros("apprentice record")) is not None:
        print(problem, file=sys.stderr)
        return 1
    from apprentice.nodes.recorder_node import run as run_recorder

    policy = None
    if run.policy_path is not None:
        from apprentice.contract import ContractError

        command = policy_command(run)  # with the user's contract: its observations and command topic
        run.parameters["wait_for_action"] = False  # the policy acts only once an episode records
        try:
            run.parameters["contract"] = str(evaluation_contract(run))
        except ContractError as exc:
            print(f"apprentice record: error: {exc}", file=sys.stderr)
            return 1
        policy = _start_policy(command)
    try:
        code = run_recorder(run.parameters, run.ros_args)
    finally:
        _STOPPING.set()
        if policy is not None and policy.poll() is None:
            policy.send_signal(signal.SIGINT)
            try:
                policy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                policy.kill()
    if code == 0 and run.tags:
        from apprentice.dataset import DatasetError
        from apprentice.dataset.hub import write_card

        try:
            print(f"dataset card with tags {run.tags}: {write_card(run.parameters['root'], tags=run.tags)}")
        except DatasetError as exc:
            print(f"apprentice record: error: {exc}", file=sys.stderr)
            return 1
    if code == 0 and run.repo_id:
        print(f"to upload: apprentice dataset push {run.parameters['root']} {run.repo_id}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
