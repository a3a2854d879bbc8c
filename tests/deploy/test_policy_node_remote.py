"""The policy node with `server`: sim node + `apprentice policy-server` + `apprentice infer --server` on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

pytest.importorskip("rclpy")
pytest.importorskip("grpc")

from test_policy_node import stop  # noqa: E402
from test_remote_policy import free_port, start_server  # noqa: E402

TOKEN = "remote-episode-token"


def test_evaluation_episodes_in_sim_through_the_policy_server(ros_env, tmp_path: Path) -> None:
    """A full evaluation in sim where the model runs in the server: reset, drive, success count, eval_info.json."""
    from deploy_helpers import write_tiny_act

    # A 40-tick chunk (1.3 s at 30 Hz) outlasts a round trip even on a loaded 2-core box (seen: 0.4-1.1 s),
    # as it must over a network; with a 10-tick chunk every action had expired on arrival there.
    checkpoint = write_tiny_act(tmp_path / "act40", chunk_size=40, n_action_steps=40)
    env = {**ros_env, "OMP_NUM_THREADS": "1"}
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    server = start_server(checkpoint, port, token_file)
    sim_log = tmp_path / "sim.log"
    sim = subprocess.Popen(
        [sys.executable, "-c", "import sys; from apprentice.nodes.sim_node import main; sys.exit(main())",
         "--ros-args", "-p", "seed:=100"],
        env=env, stdout=sim_log.open("w"), stderr=subprocess.STDOUT,
    )
    out = tmp_path / "eval" / "eval_info.json"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "apprentice.cli", "infer", f"--server=127.0.0.1:{port}",
             f"--server-token-file={token_file}", "--mode=async", "--eval-episodes=1",
             "--eval-episode-time-s=4.0", f"--eval-output={out}",
             # A loaded 2-core CI box can stall a first round trip past the default 1 s: not what is tested here.
             "--ros-args", "-p", "action_timeout_s:=3.0", "-p", "server_timeout_s:=3.0"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"on server 127.0.0.1:{port}" in result.stdout + result.stderr
    finally:
        stop(sim)
        assert stop(server) == 0, "".join(server.lines)
    info = json.loads(out.read_text())
    metrics = info["per_task"][0]["metrics"]
    assert info["overall"]["n_episodes"] == 1 and metrics["seeds"][0] > 100
    # ~120 ticks in 4 s, commanded from chunks that crossed the server (fewer on a loaded box: held ticks).
    assert metrics["lengths"][0] >= 10, (metrics, info["runtime"], result.stderr[-3000:])
    runtime = info["runtime"]
    assert runtime["server_connected"] == "True" and float(runtime["inferences"]) >= 2
    assert float(runtime["server_round_trip_p50_ms"]) > 0 and runtime["watchdog_trips"] == 0
    assert "client ipv4:127.0.0.1" in "".join(server.lines)  # the server saw the node's hello


def test_node_refuses_a_server_with_another_checkpoint(tiny_act: Path, ros_env, tmp_path: Path) -> None:
    """Checked at connect time: the node exits 1 with every mismatch named (token/protocol: test_remote_policy)."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    server = start_server(tiny_act, port, token_file)
    try:
        mismatch = subprocess.run(
            [sys.executable, "-m", "apprentice.cli", "infer", f"--server=127.0.0.1:{port}",
             f"--server-token-file={token_file}", "--contract=so101_two_cameras"],
            env={**ros_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120,
        )
    finally:
        assert stop(server) == 0, "".join(server.lines)
    assert mismatch.returncode == 1, mismatch.stdout + mismatch.stderr
    assert "refused the connection: feature mismatch" in mismatch.stderr
    assert "observation.environment_state" in mismatch.stderr and "so101_two_cameras" in mismatch.stderr
