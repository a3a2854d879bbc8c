"""A real learner process, SIGKILLed mid-run, resumes from its checkpoint; the actor fills in the rest."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("grpc")

from rl_toys import LinearAlgorithm, LineEnv, features

from apprentice.rl.actor import ActorConfig, run_actor
from apprentice.rl.checkpoint import latest_checkpoint, load_checkpoint
from apprentice.rl.transport.actor_client import ActorClient, ActorClientConfig

HERE = Path(__file__).parent
# The real CLI in a real process, with the test's algorithm registered first.
LAUNCH = ("import sys; sys.path.insert(0, {here!r}); from rl_toys import make_linear; "
          "from apprentice.rl.run_config import register_algorithm; register_algorithm('linear', make_linear); "
          "from apprentice.rl import learner_cli; sys.exit(learner_cli.main(sys.argv[1:]))")


def start_learner(config: Path, *extra: str) -> subprocess.Popen:
    code = LAUNCH.format(here=str(HERE))
    return subprocess.Popen([sys.executable, "-c", code, "--config", str(config), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # two learner processes, each importing torch: ~15 s idle, ~50 s on a loaded 2-core box
def test_sigkilled_learner_resumes_with_its_replay_buffer_and_loses_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    output = tmp_path / "run"
    config = tmp_path / "online.json"
    config.write_text(json.dumps({
        "algorithm": {"type": "linear"},
        "learner": {"output_dir": str(output), "port": port, "batch_size": 16, "online_step_before_learning": 20,
                    "policy_parameters_push_frequency": 5, "save_freq": 5, "features": features()},
    }))
    first = start_learner(config)
    env = LineEnv()
    client = ActorClient(features(), ActorClientConfig(learner_port=port, connect_timeout_s=120,
                                                       initial_backoff_s=0.05, max_backoff_s=0.5))
    try:
        client.connect()
        run_actor(env, LinearAlgorithm(), client, ActorConfig(online_steps=40))
        assert client.flush(30)
        deadline = time.monotonic() + 60
        while (last := latest_checkpoint(output)) is None or load_checkpoint(last)[2]["step"] < 15:
            assert time.monotonic() < deadline and first.poll() is None, first.stdout.read() if first.poll() else ""
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        _, killed_replay, killed_state = load_checkpoint(latest_checkpoint(output))
        assert killed_replay.num_episodes == killed_state["sessions"][client.session] // 10 + 1

        run_actor(env, LinearAlgorithm(), client, ActorConfig(online_steps=20, seed=50))  # the learner is down
        assert client.pending == 20
        second = start_learner(config, "--learner.resume=true")
        try:
            assert client.flush(120), client.stats
        finally:
            second.send_signal(signal.SIGINT)  # graceful: takes in what arrived, checkpoints, exits 0
            log = second.communicate(timeout=60)[0]
        assert second.returncode == 0, log
        assert "resumed from" in log, log
    finally:
        client.close(0.1)
        if first.poll() is None:
            first.kill()
    _, replay, state = load_checkpoint(latest_checkpoint(output))
    assert replay.num_episodes == 6 and int(replay.has_action.sum()) == 60  # every episode once
    assert state["sessions"][client.session] == 59
    assert state["step"] >= killed_state["step"]
    assert client.stats.reconnects >= 1
