"""The online loop end to end on reach (state only): episodes collected with the current TD-MPC policy go
into the replay buffer, updates train on them, checkpoints carry the buffer, resume continues it."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from apprentice.policies import load_policy
from apprentice.rl import ReplayBuffer
from apprentice.train import TrainConfig, train
from apprentice.train.online import read_online_log
from apprentice.train.reports import read_metrics

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


def _reach_dataset(root: Path, episodes: int = 2, steps: int = 10) -> Path:
    """Reach episodes with rewards written by DatasetWriter (what `sim record` with rewards gives)."""
    from test_collect import ExpertAsPolicy

    from apprentice.dataset import DatasetWriter
    from apprentice.rl import collect_episode
    from apprentice.sim import make_env

    env = make_env("reach", seed=0, render=False, max_episode_steps=steps)
    features = {
        **env.features,
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
    }
    with DatasetWriter.create(root, features=features, fps=env.fps, robot_type=env.robot_type) as w:
        for seed in range(episodes):
            ep = collect_episode(env, ExpertAsPolicy(env), seed=seed)
            for t in range(ep.length):
                w.add_frame(
                    {
                        **{k: ep.frames[k][t] for k in env.features},
                        "next.reward": ep.frames["next.reward"][t : t + 1],
                        "next.done": ep.frames["next.done"][t : t + 1],
                    }
                )
            w.save_episode(task=env.task)
    env.close()
    return root


def test_offline_then_online_mixes_dataset_and_replay(tmp_path):
    root = _reach_dataset(tmp_path / "data")
    out = tmp_path / "mixed"
    last = train(
        TrainConfig.from_args(
            _flags(out, steps=2, online_steps=2, **{"dataset.root": root, "online.sampling_ratio": 0.5})
        )
    )
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4]
    assert [r["online_buffer_size"] for r in read_metrics(out)] == [0, 0, 11, 11]  # offline first, then replay
    assert len(read_online_log(out)) == 1 and load_policy(last).config.type == "tdmpc"
