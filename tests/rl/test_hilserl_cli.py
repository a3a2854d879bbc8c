"""`apprentice train --policy.type=hilserl` flags map onto HILSerlConfig; bad flags are one-line errors."""

from __future__ import annotations

import pytest

from apprentice.rl.cli import main, parse, wants_online_rl
from apprentice.rl.replay import ReplayError
from apprentice.rl.reward import SuccessSignalReward


def test_flags_map_onto_the_config() -> None:
    cfg = parse(["--policy.type=hilserl", "--dataset.repo_id=/data/demos", "--online_training=true",
                 "--env.type=gym_hil", "--env.task=PandaPickCube-v0", "--env.obs_type=pixels_agent_pos",
                 "--online_steps=500", "--policy.utd_ratio=4", "--policy.actor_network_kwargs={\"hidden_dims\": [8]}",
                 "--output_dir=/tmp/x", "--resume=false"])
    assert cfg.dataset_root == "/data/demos" and cfg.obs_type == "pixels_agent_pos" and cfg.online_steps == 500
    assert cfg.interventions and cfg.policy == {"utd_ratio": 4, "actor_network_kwargs": {"hidden_dims": [8]}}
    assert not parse(["--policy.type=sac", "--online_training=true"]).interventions  # the algorithm alone
    assert wants_online_rl(["--policy.type=hilserl"])
    assert wants_online_rl(["--policy.type=sac", "--online_training=true"])
    assert not wants_online_rl(["--policy.type=act", "--dataset.root=x"])


def test_budget_and_eval_flags_map_onto_the_config() -> None:
    cfg = parse(["--policy.type=hilserl", "--budget_s=300", "--eval_workers=4", "--final_eval_episodes=50",
                 "--checkpoints=false"])
    assert (cfg.budget_s, cfg.eval_workers, cfg.final_eval_episodes, cfg.checkpoints) == (300.0, 4, 50, False)


@pytest.mark.parametrize(("flag", "message"), [
    ("--online_training=false", "trains online"),
    ("--env.type=aloha", "runs gym_hil"),
    ("--env.task=Nope-v0", "choose one of"),
    ("--bogus=1", "unknown flag --bogus"),
    ("--batch_size=1", "--batch_size must be >= 2"),
    ("--eval_workers=-2", "--eval_workers"),
])
def test_bad_flags_are_clear_errors(flag: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReplayError, match=message):
        parse(["--policy.type=hilserl", flag])
    assert main(["--policy.type=hilserl", flag]) == 2
    assert message.split()[0] in capsys.readouterr().err


def test_success_key_is_a_reward_source() -> None:
    reward = SuccessSignalReward()
    assert reward({}, 0.3, {}) == (0.0, False)  # the env's reward is replaced: success comes from the operator
    reward.signal()
    assert reward({}, 0.0, {}) == (1.0, True)
    assert reward({}, 0.0, {}) == (0.0, False)


def test_apprentice_train_dispatches_hilserl(capsys: pytest.CaptureFixture[str]) -> None:
    from apprentice.train.cli import main as train_main

    assert train_main(["--policy.type=hilserl", "--online_training=true", "--nope=1"]) == 2
    assert "unknown flag --nope" in capsys.readouterr().err
