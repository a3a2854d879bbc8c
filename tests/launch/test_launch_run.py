"""The launch files for real: loaded with their arguments, started with `ros2 launch`, stopped with SIGINT.

launch, launch_ros and ros2cli are not on PyPI; scripts/setup.sh builds them from ../shared/ros2-launch
when that folder is there (CI), and scripts/env.sh puts them on the path. Elsewhere this module skips
and tests/launch/test_launch_files.py still checks the files statically.
Each `ros2 launch` runs in its own session, so SIGINT reaches launch once (as a terminal's Ctrl-C does
when launch is the foreground job) and launch forwards it to every node.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

pytest.importorskip("launch_ros", reason="launch_ros is not installed (scripts/setup.sh builds it from ../shared)")
pytest.importorskip("ros2cli", reason="ros2cli is not installed (scripts/setup.sh builds it from ../shared)")
ROS2 = shutil.which("ros2")
if ROS2 is None:
    pytest.skip("no `ros2` executable on PATH (source scripts/env.sh)", allow_module_level=True)

from launch.actions import ExecuteProcess  # noqa: E402
from launch.launch_description_sources import get_launch_description_from_python_launch_file  # noqa: E402
from launch.utilities import perform_substitutions  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from launch import LaunchContext  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
# What must never appear in a launch's output: a node's traceback, rclpy's context errors, a crash.
FAILURES = ("Traceback", "RCLError", "context is invalid", "process has died", "KeyboardInterrupt")


# -- loading ----------------------------------------------------------------------------------------
def processes(path: Path, **arguments: str) -> list[tuple[str, str]]:
    """Load the launch file with ``arguments`` and run its logic (OpaqueFunctions, includes, groups)
    without starting anything: (executable, fully qualified node name) per node, (name, command line)
    per other process."""
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    found: list[tuple[str, str]] = []

    def walk(entities: list) -> None:
        for entity in entities:
            if isinstance(entity, Node):
                entity._perform_substitutions(context)  # the name and namespace as launch would run it
                # no namespace pushed: launch_ros leaves a placeholder that means the root namespace
                name = entity.node_name.replace(Node.UNSPECIFIED_NODE_NAMESPACE, "")
                found.append((entity.node_executable, name))
            elif isinstance(entity, ExecuteProcess):
                cmd = " ".join(perform_substitutions(context, part) for part in entity.cmd)
                found.append((perform_substitutions(context, entity.name), cmd))
            else:
                walk(entity.visit(context) or [])

    walk([get_launch_description_from_python_launch_file(str(path))])
    return found


def test_every_launch_file_shows_its_arguments() -> None:
    paths = sorted(LAUNCH.glob("*.launch.py"))
    shows = [  # in parallel: each `ros2 launch` spends a second or more importing
        subprocess.Popen(
            [ROS2, "launch", "apprentice", path.name, "--show-args"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in paths
    ]
    for path, show in zip(paths, shows):
        out, err = show.communicate(timeout=60)
        assert show.returncode == 0, err
        declared = [a.name for a in get_launch_description_from_python_launch_file(str(path)).get_launch_arguments()]
        assert declared, path.name
        for name in declared:
            assert f"'{name}':" in out, f"{path.name}: --show-args lacks {name}\n{out}"


def test_launch_files_expand_their_arguments_into_nodes() -> None:
    teleop = processes(LAUNCH / "teleop.launch.py", cameras="front:synthetic,wrist:/dev/video2", namespace="robot1")
    assert teleop == [
        ("driver_node", "/robot1/driver"),
        ("teleop_node", "/robot1/teleop"),
        ("camera_node", "/robot1/camera_front"),
        ("camera_node", "/robot1/camera_wrist"),
    ]
    record = processes(LAUNCH / "record.launch.py", dataset_root="/tmp/x", namespace="r")
    assert [n for _, n in record] == ["/r/driver", "/r/teleop", "/r/recorder"]
    infer = processes(LAUNCH / "infer.launch.py", policy_path="/tmp/ckpt", cameras="top:synthetic")
    assert infer == [("driver_node", "/driver"), ("camera_node", "/camera_top"), ("policy_node", "/policy_node")]
    [(name, cmd)] = processes(LAUNCH / "train.launch.py", dataset_root="/tmp/x", steps="7")
    assert name == "train" and "apprentice.cli train" in cmd and "--dataset.root=/tmp/x --output_dir=" in cmd
    assert "--steps=7" in cmd
    # sim_demo starts with the recording sim only; the rest follows from its event handlers.
    assert processes(LAUNCH / "sim_demo.launch.py", out="/tmp/x") == [("sim_node", "/sim")]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("record.launch.py", "give dataset_root:="),
        ("infer.launch.py", "give policy_path:="),
        ("train.launch.py", "give dataset_root:="),
    ],
)
def test_a_missing_required_argument_is_named(name: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        processes(LAUNCH / name)


def test_sim_demo_reports_only_an_evaluation_this_run_wrote(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("sim_demo_launch", LAUNCH / "sim_demo.launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    info = tmp_path / "eval_info.json"
    assert module.evaluation_result(str(info), 0.0) is None  # the policy node wrote nothing
    info.write_text(json.dumps({"overall": {"success_rate": 0.75, "n_episodes": 4}}))
    assert module.evaluation_result(str(info), 0.0) == "75% over 4 episodes"
    assert module.evaluation_result(str(info), time.time() + 60) is None  # left over from an earlier run
    info.write_text("{")
    assert module.evaluation_result(str(info), 0.0) is None


# -- running ----------------------------------------------------------------------------------------
class Launch:
    """`ros2 launch apprentice <file> <args>` in its own session; output in a log file."""

    def __init__(self, file: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [ROS2, "launch", "apprentice", file, *args],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            assert self.proc.poll() is None, f"launch exited ({self.proc.returncode}) before {text!r}:\n{self.output()}"
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} after {timeout} s:\n{self.output()}")

    def interrupt(self, timeout: float = 90.0) -> int:
        """SIGINT, as Ctrl-C; the exit code once launch and every node have stopped."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"launch still running {timeout} s after SIGINT:\n{self.output()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def launches():
    started: list[Launch] = []
    yield started
    for launch in started:  # a failed test must not leave nodes behind
        launch.kill()


def node_list(env: dict[str, str], want: set[str], attempts: int = 4) -> set[str]:
    """`ros2 node list`, until every node in ``want`` shows up (a slow machine starts nodes slowly)."""
    nodes: set[str] = set()
    for _ in range(attempts):
        listed = subprocess.run(
            [ROS2, "node", "list", "--no-daemon", "--spin-time", "3"], env=env, capture_output=True, text=True
        )
        nodes = set(listed.stdout.split())
        if want <= nodes:
            break
    return nodes


def topics_with_messages(topics: list[str], timeout: float = 30.0) -> set[str]:
    """The topics of ``topics`` on which a message arrived: one rclpy probe node (cheaper than a
    `ros2 topic echo` per topic), subscribed to each with its advertised type as it shows up."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
    context = rclpy.Context()
    rclpy.init(context=context)
    got: set[str] = set()
    try:
        node = rclpy.create_node("launch_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        subscribed: set[str] = set()
        deadline = time.monotonic() + timeout
        while got != set(topics) and time.monotonic() < deadline:
            for topic, types in node.get_topic_names_and_types():
                if topic in topics and topic not in subscribed:
                    package, kind, name = types[0].split("/")
                    msg_type = getattr(importlib.import_module(f"{package}.{kind}"), name)
                    node.create_subscription(msg_type, topic, lambda _m, t=topic: got.add(t), best_effort, raw=True)
                    subscribed.add(topic)
            executor.spin_once(timeout_sec=0.1)
    finally:
        rclpy.shutdown(context=context)
    return got


def assert_clean(launch: Launch, code: int, expected_code: int, processes: int) -> str:
    out = launch.output()
    assert code == expected_code, f"exit code {code}:\n{out}"
    for bad in FAILURES:
        assert bad not in out, f"{bad!r} in the output:\n{out}"
    assert out.count("process has finished cleanly") == processes, out
    return out


def small_camera_config(tmp_path: Path) -> Path:
    """config/teleop.yaml with small camera frames (two cameras per launch on a 2-core CI machine)."""
    config = yaml.safe_load((ROOT / "config" / "teleop.yaml").read_text())
    config["camera"]["ros__parameters"].update(width=96, height=72, fps=15.0, publish_compressed=True)
    path = tmp_path / "teleop_small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_checkpoint(directory: Path) -> Path:
    """The deploy tests' untrained ACT for the sim_reach contract (tests/deploy/deploy_helpers.py)."""
    spec = importlib.util.spec_from_file_location("deploy_helpers", ROOT / "tests" / "deploy" / "deploy_helpers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_act(directory)


def test_teleop_record_and_infer_run_and_stop_cleanly_on_sigint(ros_env, tmp_path: Path, launches) -> None:
    # The three run side by side (record and infer in their own namespaces): one start-up wait for all.
    config = small_camera_config(tmp_path)
    virtual = ["follower_port:=virtual", "leader_port:=virtual"]
    teleop_args = [*virtual, f"config:={config}", "cameras:=top:synthetic"]
    launches.append(Launch("teleop.launch.py", teleop_args, ros_env, tmp_path / "t.log"))
    record_args = [*virtual, "namespace:=rec", f"config:={config}", "cameras:=front:synthetic,wrist:synthetic"]
    record_args += [f"dataset_root:={tmp_path / 'dataset'}", "num_episodes:=1", "episode_time_s:=30"]
    launches.append(Launch("record.launch.py", record_args, ros_env, tmp_path / "r.log"))
    infer_args = ["follower_port:=virtual", "namespace:=inf", "contract:=sim_reach", "device:=cpu"]
    infer_args.append(f"policy_path:={tiny_checkpoint(tmp_path)}")
    launches.append(Launch("infer.launch.py", infer_args, ros_env, tmp_path / "i.log"))
    teleop, record, infer = launches
    infer.wait_for("disabled: call ~/enable", timeout=90)  # the slowest to start: torch and the checkpoint

    want = {"/driver", "/teleop", "/camera_top"}
    want |= {f"/rec/{n}" for n in ("driver", "teleop", "camera_front", "camera_wrist", "recorder")}
    want |= {"/inf/driver", "/inf/policy_node"}
    nodes = node_list(ros_env, want)
    assert want <= nodes, f"missing {sorted(want - nodes)}\n{teleop.output()}\n{record.output()}\n{infer.output()}"
    topics = [
        "/joint_states",
        "/leader/joint_states",
        "/forward_position_controller/commands",
        "/cameras/top/image_raw",
        "/rec/cameras/wrist/image_raw/compressed",
        "/rec/recorder/status",
        "/inf/joint_states",
    ]
    got = topics_with_messages(topics)
    assert got == set(topics), f"no messages on {sorted(set(topics) - got)}"

    for launch, n in ((teleop, 3), (record, 5), (infer, 2)):
        assert_clean(launch, launch.interrupt(), 0, n)


def test_sim_demo_runs_and_an_interrupt_says_which_stage_stopped(ros_env, tmp_path: Path, launches) -> None:
    ros_env["OMP_NUM_THREADS"] = "1"
    args = [f"out:={tmp_path / 'demo'}", "episodes:=3", "episode_time_s:=5", "steps:=2", "eval_episodes:=1"]
    demo = Launch("sim_demo.launch.py", [*args, "device:=cpu"], ros_env, tmp_path / "demo.log")
    launches.append(demo)
    demo.wait_for("scripted teleop for 'reach'", timeout=90)  # recording under way
    want = {"/sim", "/recorder", "/scripted_teleop"}
    nodes = node_list(ros_env, want)
    assert want <= nodes, f"missing {sorted(want - nodes)}\n{demo.output()}"
    topics = ["/joint_states", "/cameras/top/image_raw", "/sim/target", "/leader/joint_states", "/recorder/status"]
    got = topics_with_messages(topics)
    assert got == set(topics), f"no messages on {sorted(set(topics) - got)}"

    out = assert_clean(demo, demo.interrupt(), 1, 3)
    assert "sim_demo: recording did not finish (the launch was interrupted)" in out, out
    assert "demo done" not in out and "[train" not in out, out
