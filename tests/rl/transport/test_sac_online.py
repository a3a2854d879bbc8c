"""SAC behind `apprentice learner` / `apprentice actor` (algorithm.type: sac), on the `reach` sim over loopback:
the learner updates SAC from streamed transitions and the actor ends up acting with the learner's weights."""

from __future__ import annotations

import json
import socket
import threading

import pytest

pytest.importorskip("grpc")
pytest.importorskip("mujoco")


from apprentice.rl import actor_cli, learner_cli
from apprentice.rl.checkpoint import latest_checkpoint, load_checkpoint
from apprentice.rl.run_config import make_algorithm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SAC = ("{type: sac, device: cpu, utd_ratio: 1, latent_dim: 16, num_critics: 2, "
       "actor_network_kwargs: {hidden_dims: [32]}, critic_network_kwargs: {hidden_dims: [32]}}")


def test_sac_learner_and_actor_over_loopback(tmp_path, capsys):
    port = free_port()
    config = tmp_path / "online.yaml"
    config.write_text(f"""
algorithm: {SAC}
env: {{type: reach, render: false}}
learner: {{output_dir: {tmp_path / 'run'}, port: {port}, batch_size: 16, utd_ratio: 1,
          online_step_before_learning: 40, policy_parameters_push_frequency: 5, save_freq: 20}}
actor: {{online_steps: 240}}
client: {{learner_port: {port}, connect_timeout_s: 20}}
""")
    codes: list[int] = []
    stop = threading.Event()
    learner = threading.Thread(target=lambda: codes.append(learner_cli.main(["--config", str(config)], stop)))
    learner.start()
    try:
        assert actor_cli.main(["--config", str(config)]) == 0
    finally:
        stop.set()
        learner.join(60)
    assert codes == [0]
    summary = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert summary["steps"] == 240 and summary["all_delivered"]
    algo_state, replay, state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state["step"] >= 1 and int(replay.has_action.sum()) == 240
    # The checkpointed SAC is the learner's, moved away from a fresh one built from the same features.
    fresh = make_algorithm({"type": "sac", "device": "cpu", "utd_ratio": 1, "latent_dim": 16, "num_critics": 2,
                            "actor_network_kwargs": {"hidden_dims": [32]},
                            "critic_network_kwargs": {"hidden_dims": [32]}},
                           {**{k: {"dtype": "float32", "shape": list(v.shape[1:])} for k, v in replay.data.items()
                               if k.startswith("observation.")},
                            "action": {"dtype": "float32", "shape": list(replay.data["action"].shape[1:])}})
    fresh.load_state_dict(algo_state)  # same architecture: loads strictly
    assert fresh.policy.config.input_features["observation.state"].shape == (6,)
