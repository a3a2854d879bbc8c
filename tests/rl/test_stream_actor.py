"""`StreamActor` (the ROS actor's logic) without ROS: transitions, interventions, holds, episode ends."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("grpc")

from apprentice.contract import contract_from_dict
from apprentice.resources import config_path
from apprentice.rl.stream_actor import StreamActor, contract_features
from apprentice.rl.transport.actor_client import ActorClient, ActorClientConfig
from apprentice.rl.transport.learner_service import LearnerService

MS = 1_000_000


class Zero:
    def select_action(self, obs):
        return np.zeros(6, np.float32)

    def load_actor_state_dict(self, sd):
        pass


@pytest.fixture(params=[3])
def setup(request):
    data = yaml.safe_load(config_path("contracts", "sim_reach.yaml").read_text())
    data["observations"] = [o for o in data["observations"] if "images" not in o["key"]]
    contract = contract_from_dict(data)
    service = LearnerService(contract_features(contract), port=0)
    service.start()
    config = ActorClientConfig(learner_port=service.port, outbox_capacity=request.param, initial_backoff_s=0.05,
                               max_backoff_s=0.1)
    client = ActorClient(contract_features(contract), config)
    client.connect()
    actor = StreamActor(contract, Zero(), client, max_episode_steps=4)
    yield actor, service, client
    client.close(0.1)
    service.stop(0)


def feed(actor: StreamActor, t_ns: int, leader: list[float] | None = None) -> None:
    actor.push("observation.state", t_ns, np.full(6, t_ns / 1e9, np.float32))
    actor.push("observation.environment_state", t_ns, np.zeros(3, np.float32))
    if leader is not None:
        actor.push("action", t_ns, np.asarray(leader, np.float32))


@pytest.mark.parametrize("setup", [100], indirect=True)
def test_ticks_make_transitions_and_the_time_limit_ends_the_episode(setup):
    actor, service, client = setup
    assert actor.tick(0).reason.startswith("waiting for the episode")
    actor.start_episode()
    assert actor.tick(10 * MS).reason.startswith("stale")  # nothing received yet: hold, never act blind
    results = []
    for i in range(1, 6):
        feed(actor, i * 33 * MS)
        results.append(actor.tick(i * 33 * MS + MS))
    assert [r.reason for r in results] == ["policy"] * 4 + ["episode done"]
    assert results[-1].episode_done and results[-1].command is None
    assert client.flush(5.0)
    got = [service.inbox.get(timeout=1)[1] for _ in range(4)]
    assert [t.seq for t in got] == [0, 1, 2, 3] and [t.truncated for t in got] == [False, False, False, True]
    np.testing.assert_allclose(got[1].observation["observation.state"], 0.066)  # tick 2's observation
    np.testing.assert_allclose(got[3].next_observation["observation.state"], 0.165)


def test_interventions_use_the_leader_and_a_full_outbox_holds(setup):
    actor, service, client = setup
    actor.start_episode()
    actor.intervention = True
    feed(actor, 33 * MS)
    assert actor.tick(34 * MS).reason.startswith("intervention: no fresh action")
    feed(actor, 66 * MS, leader=[0.1] * 6)
    result = actor.tick(67 * MS)
    assert result.reason == "intervention"
    np.testing.assert_allclose(result.command, 0.1)  # radians in, radians out (sim_reach's units)
    service.stop(0)  # the learner goes away: 3 transitions fit the outbox, then the arm holds
    reasons = []
    for i in range(3, 8):
        feed(actor, i * 33 * MS, leader=[0.1] * 6)
        reasons.append(actor.tick(i * 33 * MS + MS).reason)
    assert reasons[:3] == ["intervention"] * 3
    assert all(r.startswith("learner unreachable, outbox full") for r in reasons[3:])
    assert client.outbox_size == 3
