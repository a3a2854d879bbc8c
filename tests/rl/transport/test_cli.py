"""`apprentice learner` and `apprentice actor` as their CLIs run them, on the `reach` sim over loopback."""

from __future__ import annotations

import json
import socket
import threading

import pytest

pytest.importorskip("grpc")
pytest.importorskip("mujoco")

from rl_toys import make_linear

from apprentice.rl import actor_cli, learner_cli
from apprentice.rl.checkpoint import latest_checkpoint, load_checkpoint
from apprentice.rl.run_config import register_algorithm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def config_file(tmp_path):
    register_algorithm("linear", make_linear)
    port = free_port()
    path = tmp_path / "online.yaml"
    path.write_text(f"""
algorithm: {{type: linear}}
env: {{type: reach, render: false}}
learner: {{output_dir: {tmp_path / 'run'}, port: {port}, batch_size: 16, online_step_before_learning: 50,
          policy_parameters_push_frequency: 5, save_freq: 10}}
actor: {{online_steps: 240}}
client: {{learner_port: {port}, connect_timeout_s: 20}}
""")
    return path


def test_learner_and_actor_clis_run_an_online_loop(config_file, tmp_path, capsys):
    codes: list[int] = []
    stop = threading.Event()
    learner = threading.Thread(target=lambda: codes.append(learner_cli.main(["--config", str(config_file)], stop)))
    learner.start()
    try:
        assert actor_cli.main(["--config", str(config_file)]) == 0
    finally:
        stop.set()  # as Ctrl-C would: the learner checkpoints and exits
        learner.join(60)
    assert codes == [0]
    out = capsys.readouterr().out
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert summary["steps"] == 240 and summary["episodes"] == 2 and summary["all_delivered"]
    _, replay, state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state["step"] >= 1 and replay.num_episodes == 2 and int(replay.has_action.sum()) == 240
    assert replay.data["observation.state"].shape[1:] == (6,)


def test_cli_errors_are_one_clear_line(config_file, tmp_path, capsys):
    assert learner_cli.main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "--config" in capsys.readouterr().err
    assert learner_cli.main(["--config", str(config_file), "--learner.utd=3"]) == 2
    assert "unknown option(s) ['utd']" in capsys.readouterr().err
    assert learner_cli.main(["--config", str(config_file), "--algorithm.type=sacc"]) == 2
    assert "algorithm.type 'sacc' is not registered" in capsys.readouterr().err
    assert actor_cli.main(["--config", str(config_file), "--client.connect_timeout_s=0.2", "--port=1"]) == 2
    assert "no learner at 127.0.0.1:1 " in capsys.readouterr().err  # --port is client.learner_port
    assert learner_cli.main(["--config", str(config_file), "--host=0.0.0.0"]) == 2  # --host is learner.host
    assert "refusing to listen on 0.0.0.0 without an access token" in capsys.readouterr().err
