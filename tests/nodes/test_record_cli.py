"""nodes/record_cli.py: the seed's `control_robot.py record` spellings run the same recorder as our flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apprentice.nodes.infer_cli import ros_args
from apprentice.nodes.record_cli import RecordArgsError, contract_for_robot, parse_record_args, policy_command
from apprentice.resources import config_path

ROOT = Path(__file__).resolve().parents[2]
SO101 = str(config_path("contracts", "so101_two_cameras.yaml"))


def test_seed_record_command_is_our_record_command(tmp_path: Path) -> None:
    seed = parse_record_args(
        ["--robot-path", str(config_path("robots", "so101_follower.yaml")), "--fps", "30", "--root", str(tmp_path),
         "--repo-id", "me/so101_test", "--tags", "so101", "tutorial", "--warmup-time-s", "5",
         "--episode-time-s", "60", "--reset-time-s", "10", "--num-episodes", "50"]
    )
    ours = parse_record_args(
        ["--contract", SO101, "--dataset.root", str(tmp_path / "me/so101_test"), "--dataset.repo_id",
         "me/so101_test", "--dataset.tags", "so101", "tutorial", "--warmup_time_s", "5",
         "--dataset.episode_time_s", "60", "--dataset.reset_time_s", "10", "--dataset.num_episodes", "50"]
    )
    assert seed == ours
    assert seed.parameters["root"] == str(tmp_path / "me/so101_test")  # the seed's layout: <root>/<repo-id>
    assert seed.parameters["num_episodes"] == 50 and seed.parameters["warmup_time_s"] == 5.0
    assert seed.tags == ["so101", "tutorial"] and seed.policy_path is None


@pytest.mark.ros
def test_every_flag_sets_a_parameter_the_recorder_declares(tmp_path: Path) -> None:
    from apprentice.nodes.recorder_node import PARAMETERS

    run = parse_record_args(["--contract", SO101, "--dataset.root", str(tmp_path), "--topics", "tf"])
    declared = {p.name: p for p in PARAMETERS}
    assert set(run.parameters) <= set(declared)
    for name, value in run.parameters.items():  # ROS parameter types are fixed by the declared default
        assert type(value) is type(declared[name].default), name


def test_robot_type_names_its_contract() -> None:
    assert contract_for_robot("so101") == contract_for_robot("so101_follower") == SO101
    with pytest.raises(RecordArgsError, match="--robot-path koch_follower: robot type koch_follower has none"):
        contract_for_robot("koch_follower")
    with pytest.raises(RecordArgsError, match="--robot-path r2d2: no robot definition"):
        contract_for_robot("r2d2")


def test_fps_must_match_the_contract(tmp_path: Path) -> None:
    assert parse_record_args(["--contract", SO101, "--fps", "30", "--dataset.root", str(tmp_path)]).parameters
    with pytest.raises(RecordArgsError, match=r"--fps 15: contract .* records at 30 fps"):
        parse_record_args(["--contract", SO101, "--fps", "15", "--dataset.root", str(tmp_path)])


def test_root_from_repo_id_alone_is_lerobots_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    run = parse_record_args(["--contract", SO101, "--repo-id", "me/x"])
    assert run.parameters["root"] == str(tmp_path / "home/me/x")
    with pytest.raises(SystemExit):
        parse_record_args(["--contract", SO101, "--root", "a", "--dataset.root", "b"])


def test_p_records_while_the_policy_drives(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints/last/pretrained_model"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    run = parse_record_args(["--robot-path", "so101", "--root", str(tmp_path / "data"), "--repo-id", "me/eval_x",
                             "-p", str(ckpt), "--ros-args", "-p", "keyboard:=false"])
    assert run.policy_path == ckpt
    assert run.ros_args == ["--ros-args", "-p", "keyboard:=false"]  # ROS's -p is not the policy's
    cmd = policy_command(run)
    assert cmd[:3] == [sys.executable, "-m", "apprentice.nodes.infer_cli"]
    args = ros_args(cmd[3:])
    pairs = dict(args[i + 1].split(":=", 1) for i in range(len(args) - 1) if args[i] == "-p")
    assert pairs["follow_recorder"] == "true" and pairs["policy_path"] == f'"{ckpt}"'
    assert pairs["contract"] == f'"{SO101}"' and "enabled" not in pairs  # it drives only while recording


def test_pickle_policy_is_refused(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"pickle")
    with pytest.raises(RecordArgsError, match=r"a pickle file.*last/pretrained_model"):
        parse_record_args(["--contract", SO101, "--dataset.root", str(tmp_path / "d"), "-p", str(tmp_path / "last.pt")])


def _unsourced_env() -> dict[str, str]:
    """A shell that ran `.venv/bin/apprentice` without `source scripts/env.sh`: no install/ on any path."""
    keep = ("HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def test_help_and_a_clear_error_without_the_ros_setup(tmp_path: Path) -> None:
    env = _unsourced_env()
    for command in ("record", "infer"):
        helped = subprocess.run([sys.executable, "-m", "apprentice.cli", command, "--help"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert helped.returncode == 0 and f"usage: apprentice {command}" in helped.stdout, helped.stderr
    ran = subprocess.run(
        [sys.executable, "-m", "apprentice.cli", "record", "--contract", SO101, "--dataset.root", str(tmp_path / "d")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stderr
    assert ran.stderr.startswith("apprentice record: ") and "scripts/env.sh" in ran.stderr
    assert not (tmp_path / "d").exists()  # nothing was started or written


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_policy_process_dies_with_a_killed_record() -> None:
    """SIGKILL of `apprentice record` leaves no policy node driving the robot."""
    import time

    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom apprentice.nodes.record_cli import _start_policy\n"
         "p = _start_policy([sys.executable, '-c', 'import time; time.sleep(60)'])\nprint(p.pid, flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    state = ""
    while time.monotonic() < deadline:
        try:
            lines = Path(f"/proc/{child}/status").read_text().splitlines()
            state = next((line for line in lines if line.startswith("State")), "")
        except FileNotFoundError:
            state = "gone"
        if state == "gone" or "zombie" in state:
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
    assert state == "gone" or "zombie" in state, state
