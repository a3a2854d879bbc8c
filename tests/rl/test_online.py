"""The online loop end to end on reach (state only): episodes collected with the current TD-MPC policy go
into the replay buffer, updates train on them, checkpoints carry the buffer, resume continues it."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from apprentice.policies import load_policy
from apprentice.rl import ReplayBuffer
from apprentice.train import TrainConfig, train
from apprentice.train.loop import read_metrics
from apprentice.train.online import read_online_log

# A shrunk TD-MPC (tests/policies/tdmpc_helpers.py has the same): milliseconds per plan and update on CPU.
TINY = {
    "horizon": 3,
    "latent_dim": 16,
    "mlp_dim": 32,
    "state_encoder_hidden_dim": 32,
    "q_ensemble_size": 3,
    "n_gaussian_samples": 32,
    "n_pi_samples": 4,
    "n_elites": 8,
    "cem_iterations": 2,
}


def _flags(out: Path, **extra: object) -> list[str]:
    flags = [
        "--policy.type=tdmpc",
        *(f"--policy.{k}={v}" for k, v in TINY.items()),
        "--env.type=reach",
        "--env.max_episode_steps=10",
        "--steps=0",
        f"--output_dir={out}",
        "--online.rollout_n_episodes=1",
        "--online.steps_between_rollouts=2",
        "--online_env_seed=500",
        "--batch_size=8",
        "--log_freq=1",
        "--save_freq=100",
        "--policy.device=cpu",
        "--seed=2",
    ]
    return flags + [f"--{k}={v}" for k, v in extra.items()]


def test_online_loop_collects_trains_and_resumes(tmp_path):
    out = tmp_path / "online"
    first = train(TrainConfig.from_args(_flags(out, online_steps=4)))
    rollouts = read_online_log(out)
    assert [r["seed"] for r in rollouts] == [500, 501] and all(r["length"] == 10 for r in rollouts)
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["online_buffer_size"] for r in records] == [11, 11, 22, 22]  # 10 steps + the final observation
    buffer = ReplayBuffer.load(first.parent / "training_state" / "replay_buffer.safetensors")
    assert len(buffer) == 22 and buffer.num_episodes == 2
    assert set(buffer.keys) >= {"observation.state", "observation.environment_state", "action", "next.reward"}
    policy = load_policy(first)
    assert policy.config.type == "tdmpc" and "observation.images.top" not in policy.config.input_features
    # The action stats come from the env's bounds: planned actions stay inside its joint ranges.
    actions = torch.as_tensor(buffer.data["action"][buffer.has_action])
    low, high = policy.normalizer.stats["action"]["min"], policy.normalizer.stats["action"]["max"]
    assert torch.equal(low, torch.tensor([-1.92, -1.75, -1.69, -1.66, -2.74, -0.17]))  # reach's ctrlrange
    assert ((actions >= low - 1e-5) & (actions <= high + 1e-5)).all()

    resumed = train(TrainConfig.from_args(_flags(out, online_steps=6, resume="true")))
    assert [r["seed"] for r in read_online_log(out)] == [500, 501, 502]
    assert ReplayBuffer.load(resumed.parent / "training_state" / "replay_buffer.safetensors").num_episodes == 3
    a, b = load_file(str(first / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("model."))  # it kept training
