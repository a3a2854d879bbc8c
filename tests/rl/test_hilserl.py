"""In-process HIL-SERL on gym-hil PandaPickCube (state variant), shrunk: interventions are executed and
stored with their flag (online buffer and recorded dataset), and a learner killed after a checkpoint
resumes with its replay buffer, weights and counters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gym_hil")

from apprentice.rl import ReplayBuffer, hilserl
from apprentice.rl.demos import buffer_from_dataset
from apprentice.rl.hilserl import HILSerlConfig, read_log, train_hilserl
from apprentice.rl.intervention import IS_INTERVENTION

TINY = {"latent_dim": 16, "actor_network_kwargs": {"hidden_dims": [32, 32]},
        "critic_network_kwargs": {"hidden_dims": [32, 32]},
        "discrete_critic_network_kwargs": {"hidden_dims": [32, 32]}, "online_step_before_learning": 10}


def tiny(out: Path, **fields: object) -> HILSerlConfig:
    base = {"output_dir": str(out), "num_demos": 1, "max_episode_steps": 25, "online_steps": 50,
            "batch_size": 8, "eval_freq": 10_000, "eval_episodes": 1, "save_freq": 25, "policy": TINY}
    return HILSerlConfig(**{**base, **fields})


def test_interventions_drive_the_env_and_keep_their_flag(tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "run", record_dataset=str(tmp_path / "recorded"))
    ckpt = train_hilserl(cfg)
    online = ReplayBuffer.load(ckpt / "training_state" / "online_buffer.safetensors")
    flags = online.data[IS_INTERVENTION][online.has_action]
    # An untrained policy drifts: the scripted operator took over for some steps, not all.
    assert 0 < flags.sum() < len(flags)
    episodes = read_log(cfg.output_dir, "episodes")
    assert sum(e["interventions"] for e in episodes) == int(flags.sum())
    assert all(0.0 <= e["intervention_rate"] <= 1.0 for e in episodes)
    # The operator's actions are the expert's: a gripper command in {0, 1, 2} and deltas within [-1, 1].
    acted = online.data["action"][online.has_action][flags > 0]
    assert set(np.unique(acted[:, 3])) <= {0.0, 1.0, 2.0} and np.all(np.abs(acted[:, :3]) <= 1.0)
    recorded = buffer_from_dataset(cfg.record_dataset, ["observation.state", "observation.environment_state"])
    np.testing.assert_array_equal(recorded.data[IS_INTERVENTION], flags)
    np.testing.assert_allclose(recorded.data["action"], online.data["action"][online.has_action], atol=1e-6)


def test_killed_learner_resumes_with_its_replay_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save = hilserl.hil_checkpoint.save_hil_checkpoint
    saved: list[Path] = []

    def save_then_die(*args: object, **kwargs: object) -> Path:
        saved.append(save(*args, **kwargs))
        raise KeyboardInterrupt  # the process is killed right after its first checkpoint

    monkeypatch.setattr(hilserl.hil_checkpoint, "save_hil_checkpoint", save_then_die)
    cfg = tiny(tmp_path / "run", online_steps=75)
    with pytest.raises(KeyboardInterrupt):
        train_hilserl(cfg)
    monkeypatch.setattr(hilserl.hil_checkpoint, "save_hil_checkpoint", save)
    state = saved[0] / "training_state"
    before = ReplayBuffer.load(state / "online_buffer.safetensors")
    weights_before = {k: v.clone() for k, v in hilserl.load_policy(saved[0] / "pretrained_model").state_dict().items()}
    steps_before = read_log(cfg.output_dir, "episodes")[-1]

    with pytest.raises(Exception, match="resume=true"):
        train_hilserl(cfg)  # not silently starting over in the same dir
    ckpt = train_hilserl(tiny(tmp_path / "run", online_steps=75, resume=True))
    after = ReplayBuffer.load(ckpt / "training_state" / "online_buffer.safetensors")
    n = len(before)
    assert len(after) > n
    for key in before.data:  # the resumed buffer starts with exactly the checkpointed transitions
        np.testing.assert_array_equal(after.data[key][:n], before.data[key])
    episodes = read_log(cfg.output_dir, "episodes")
    assert episodes[-1]["env_step"] >= 75 and episodes[-1]["episode"] > steps_before["episode"]
    assert episodes[-1]["optimization_step"] > steps_before["optimization_step"]
    resumed = hilserl.load_policy(ckpt / "pretrained_model").state_dict()
    assert any(not torch.equal(resumed[k], weights_before[k]) for k in weights_before)  # it kept learning
