"""The learner process's loop over real gRPC: updates, weight pushes, checkpoints, kill and resume."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

pytest.importorskip("grpc")

from rl_toys import LinearAlgorithm, LineEnv, features

from apprentice.rl.actor import ActorConfig, ScriptedIntervention, run_actor
from apprentice.rl.checkpoint import (
    LearnerError,
    flatten_tree,
    latest_checkpoint,
    load_checkpoint,
    unflatten_tree,
)
from apprentice.rl.learner import Learner, LearnerConfig
from apprentice.rl.transport.actor_client import ActorClient, ActorClientConfig


def learner_config(tmp_path, **kwargs) -> LearnerConfig:
    defaults = dict(output_dir=str(tmp_path / "learner"), port=0, batch_size=32, online_step_before_learning=20,
                    policy_parameters_push_frequency=5, save_freq=0, features=features())
    return LearnerConfig(**{**defaults, **kwargs})


def client(port: int) -> ActorClient:
    return ActorClient(features(), ActorClientConfig(learner_port=port, connect_timeout_s=5.0, initial_backoff_s=0.05,
                                                     max_backoff_s=0.2, call_timeout_s=2.0))


class Expert:
    """LineEnv's expert as an always-on intervention source (every action is the operator's)."""

    def __init__(self, env: LineEnv) -> None:
        self.env = env

    def reset(self) -> None:
        pass

    def act(self, obs):
        return self.env.expert(obs)


def run_in_thread(learner: Learner, max_steps: int) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=learner.run, args=(stop, max_steps), daemon=True)
    thread.start()
    return thread, stop


def test_weights_learned_on_the_learner_arrive_at_the_actor(tmp_path):
    learner = Learner(LinearAlgorithm(), learner_config(tmp_path, utd_ratio=2))
    port = learner.start()
    thread, stop = run_in_thread(learner, max_steps=15)
    env, actor_algorithm = LineEnv(), LinearAlgorithm()
    intervention = ScriptedIntervention(Expert(env), drift=0.0, patience=1, takeover_steps=1000, dims=slice(0, 2))
    try:
        with client(port) as c:
            # Paced at 20 Hz (2 s): learning starts once 20 transitions are in, so the learner's pushes come
            # while the actor still steps, on a loaded machine too (unpaced, 40 steps took ~5 ms).
            stats = run_actor(env, actor_algorithm, c, ActorConfig(online_steps=40, fps=20), intervention)
            thread.join(20)
            # one update per transition once 20 are in the buffer: >= 20 due, 15 asked
            assert learner.step == 15
            deadline, loaded = time.monotonic() + 5, stats.last_parameters_step
            while loaded != 15:  # the step-15 push, unless the actor already loaded it during the run
                assert time.monotonic() < deadline, "the step-15 weights never reached the actor"
                if (latest := c.poll_parameters()) is not None:
                    actor_algorithm.load_actor_state_dict(latest[1])
                    loaded = latest[0]
                time.sleep(0.02)
            assert c.flush(10)
        while learner.ingest(timeout=0.1):  # the loop stopped at max_steps: take in the rest
            pass
        assert stats.steps == 40 and stats.episodes == 4 and stats.interventions == 40
        torch.testing.assert_close(actor_algorithm.weight, learner.algorithm.weight)
        assert float(learner.algorithm.weight.detach().abs().sum()) > 0  # it learned something: weights left zero
        assert stats.parameter_updates >= 1  # pushes arrived during the run, not only at the end
        assert set(learner.algorithm.batch_sizes) == {64}  # utd_ratio 2 batches of 32, stacked along B
        batch = learner.sample()
        assert batch["observation.images.cam"].shape == (64, 3, 8, 8)  # sent (8, 8, 3): channels first
        assert batch["next.observation.state"].shape == (64, 3) and batch["next.done"].shape == (64,)
        assert learner.replay.num_episodes == 4
        assert learner.replay.data["complementary_info.is_intervention"][learner.replay.has_action].all()
        log = (tmp_path / "learner" / "interactions.jsonl").read_text().splitlines()
        assert len(log) == 4 and '"intervention_rate": 1.0' in log[0]
    finally:
        stop.set()
        learner.stop(checkpoint=False)


def test_learner_killed_mid_run_resumes_from_its_checkpoint_with_its_replay_buffer(tmp_path):
    config = learner_config(tmp_path, save_freq=10)
    first = Learner(LinearAlgorithm(), config)
    port = first.start()
    thread, stop = run_in_thread(first, max_steps=25)
    env = LineEnv()
    c = client(port)
    c.connect()
    try:
        run_actor(env, LinearAlgorithm(), c, ActorConfig(online_steps=45))  # 4 episodes + a 5-step one cut short
        assert c.flush(10)
        thread.join(20)
        assert first.step == 25
        # Killed: nothing after the step-20 checkpoint is saved (no final save, the service just goes away).
        checkpoint = latest_checkpoint(config.output_dir)
        assert checkpoint is not None and checkpoint.name == f"{20:09d}"
        saved_state, saved_replay, learner_state = load_checkpoint(checkpoint)
        first.stop(checkpoint=False)

        second = Learner(LinearAlgorithm(seed=1), learner_config(tmp_path, save_freq=10, port=port, resume=True))
        second.start()
        assert second.step == 20
        torch.testing.assert_close(second.algorithm.weight, saved_state["weight"])
        assert second.algorithm.optimizer.state_dict()["state"][0]["step"] == 20  # Adam's state came back
        assert len(second.replay) == len(saved_replay) and second.replay.num_episodes == saved_replay.num_episodes
        np.testing.assert_array_equal(second.replay.data["observation.state"], saved_replay.data["observation.state"])
        # The checkpoint is consistent: it holds exactly the transitions up to the seq it records.
        assert int(saved_replay.has_action.sum()) == learner_state["sessions"][c.session] + 1
        # The actor goes on; it resends what the checkpoint lacks, then 15 new steps (10 + a 5-step cut).
        run_actor(env, LinearAlgorithm(), c, ActorConfig(online_steps=15, seed=100))
        assert c.flush(10)
        deadline = time.monotonic() + 5
        while second.replay.num_episodes < 7 and time.monotonic() < deadline:
            second.ingest(timeout=0.05)
        assert second.replay.num_episodes == 7  # every episode exactly once: none lost, none doubled
        assert int(second.replay.has_action.sum()) == 60
        assert second.service.sessions[c.session].duplicates == 0
        second.stop(checkpoint=True)  # no update since, but new episodes: saved (at step 20 still)
        _, final_replay, final_state = load_checkpoint(latest_checkpoint(config.output_dir))
        assert final_state["step"] == 20 and final_replay.num_episodes == 7
        assert final_state["sessions"][c.session] == 59
    finally:
        stop.set()
        c.close(0.1)


def test_learner_utd_ratio_must_match_the_algorithms(tmp_path):
    algorithm = LinearAlgorithm()
    algorithm.config = type("Config", (), {"utd_ratio": 3})()
    with pytest.raises(LearnerError, match=r"learner\.utd_ratio=2 but the algorithm's utd_ratio is 3"):
        Learner(algorithm, learner_config(tmp_path, utd_ratio=2)).start()


def test_learner_output_dir_rules(tmp_path):
    with pytest.raises(LearnerError, match="no checkpoint in"):
        Learner(LinearAlgorithm(), learner_config(tmp_path, resume=True)).start()
    learner = Learner(LinearAlgorithm(), learner_config(tmp_path))
    learner.start()
    learner.save()
    learner.stop(checkpoint=False)
    with pytest.raises(LearnerError, match="pass --resume=true"):
        Learner(LinearAlgorithm(), learner_config(tmp_path)).start()
    # A save killed half-way leaves a .tmp directory: it is never what `last` points at.
    (tmp_path / "learner" / "checkpoints" / "000000005.tmp").mkdir()
    assert latest_checkpoint(tmp_path / "learner").name == f"{0:09d}"
    (latest_checkpoint(tmp_path / "learner") / "algorithm.json").unlink()
    with pytest.raises(LearnerError, match=r"lacks algorithm\.json"):
        Learner(LinearAlgorithm(), learner_config(tmp_path, resume=True)).start()
    with pytest.raises(LearnerError, match="features must list"):
        LearnerConfig(features={})


def test_state_trees_keep_int_keys_tuples_and_tensors():
    algorithm = LinearAlgorithm()
    algorithm.update({"observation.state": torch.ones(4, 3), "action": torch.ones(4, 2)})
    tree = {**algorithm.state_dict(), "nested": {"betas": (0.9, 0.99), "arr": np.arange(3)}}
    tensors: dict = {}
    back = unflatten_tree(flatten_tree(tree, tensors), tensors)
    assert set(back["optimizer"]["state"]) == {0}  # an int key, as Adam's load_state_dict needs
    assert back["nested"]["betas"] == (0.9, 0.99)
    np.testing.assert_array_equal(back["nested"]["arr"], np.arange(3))
    fresh = LinearAlgorithm(seed=3)
    fresh.load_state_dict(back)
    torch.testing.assert_close(fresh.weight, algorithm.weight)
    with pytest.raises(LearnerError, match=r"is a object"):
        flatten_tree({"x": object()}, {})
