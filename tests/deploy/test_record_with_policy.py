"""`apprentice record ... -p CHECKPOINT` (the seed's real-robot evaluation): the policy drives, the recorder records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apprentice.resources import config_path


@pytest.mark.ros
def test_seed_record_command_with_p_records_what_the_policy_commands(tiny_act: Path, ros_env, tmp_path) -> None:
    ros_env["OMP_NUM_THREADS"] = "1"
    sim_log = tmp_path / "sim.log"
    sim = subprocess.Popen(
        [sys.executable, "-c", "import sys; from apprentice.nodes.sim_node import main; sys.exit(main())",
         "--ros-args", "-p", "seed:=3"],
        env=ros_env, stdout=sim_log.open("w"), stderr=subprocess.STDOUT,
    )
    # This machine is shared (inputs stall for 0.5 s at times): looser freshness and drop limits than the
    # shipped contract, and a watchdog that does not latch on the first stall; what is tested is the wiring.
    contract = yaml.safe_load(config_path("contracts", "sim_reach.yaml").read_text())
    contract["max_drop_ratio"] = 0.9
    for spec in [*contract["observations"], contract["action"]]:
        spec["max_age_s"] = max(spec["max_age_s"], 0.5)
    contract_path = tmp_path / "sim_reach_loose.yaml"
    contract_path.write_text(yaml.safe_dump(contract))
    params = tmp_path / "policy.yaml"
    params.write_text("policy_node:\n  ros__parameters:\n    input_timeout_s: 5.0\n    device: cpu\n")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "apprentice.cli", "record", "--contract", str(contract_path), "--fps", "30",
             "--root", str(tmp_path / "data"), "--repo-id", "me/eval_reach", "--tags", "sim", "eval",
             "--warmup-time-s", "1", "--episode-time-s", "2", "--reset-time-s", "0", "--num-episodes", "1",
             "-p", str(tiny_act), "--policy.params_file", str(params), "--dataset.vcodec", "h264",
             "--ros-args", "-p", "keyboard:=false"],
            env=ros_env, capture_output=True, text=True, timeout=240,
        )
    finally:
        sim.send_signal(2)
        sim.wait(timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr + sim_log.read_text()
    root = tmp_path / "data/me/eval_reach"
    from apprentice.dataset import LeRobotDataset

    ds = LeRobotDataset(root)
    assert ds.meta.total_episodes == 1 and len(ds) >= 5, done.stderr
    contract = yaml.safe_load((tmp_path / "data/me/eval_reach_bags/evaluation_contract.yaml").read_text())
    assert contract["action"]["topic"] == "forward_position_controller/commands"  # the policy's commands
    card = yaml.safe_load((root / "README.md").read_text().split("---")[1])
    assert card["tags"] == ["LeRobot", "sim", "eval"]
    assert "policy driving" in done.stderr + done.stdout  # the policy node followed the recorder's episode
