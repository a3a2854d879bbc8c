"""Actor ⇄ learner over real gRPC on loopback: order, completeness, reconnects, refusals, chunking."""

from __future__ import annotations

import contextlib
import queue
import time

import numpy as np
import pytest

pytest.importorskip("grpc")

from rl_toys import LineEnv, features

from apprentice.rl.transport import TransportError, protocol
from apprentice.rl.transport.actor_client import (
    ActorClient,
    ActorClientConfig,
    LearnerRefused,
    OutboxFull,
)
from apprentice.rl.transport.codec import Transition, decode_transition, encode_transition
from apprentice.rl.transport.learner_service import LearnerService


def client_for(service: LearnerService, feats: dict | None = None, **kwargs) -> ActorClient:
    config = ActorClientConfig(learner_port=service.port, connect_timeout_s=5.0, initial_backoff_s=0.05,
                               max_backoff_s=0.2, call_timeout_s=2.0, **kwargs)
    return ActorClient(feats or features(), config)


def rollout(n: int, length: int = 10) -> list[Transition]:
    """n transitions of LineEnv, episodes of `length` steps, actions from its expert."""
    env, out = LineEnv(length), []
    obs, _ = env.reset(seed=0)
    while len(out) < n:
        action = env.expert(obs).astype(np.float32)
        nxt, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        out.append(Transition(obs, action, reward, terminated, truncated, len(out) % 3 == 0, False,
                              nxt if done else None))
        obs = env.reset(seed=len(out))[0] if done else nxt
    return out


def drain(service: LearnerService, expect: int, timeout: float = 10.0) -> list[tuple[str, Transition]]:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got.append(service.inbox.get(timeout=0.1))
    return got


@pytest.fixture
def service():
    s = LearnerService(features(), port=0)
    s.start()
    yield s
    s.stop(0)


def test_transitions_arrive_in_order_and_complete(service):
    sent = rollout(95)
    with client_for(service, max_batch=16) as client:
        for t in sent:
            client.put(t)
        assert client.flush(10.0)
    got = drain(service, 95)
    assert [t.seq for _, t in got] == list(range(95))
    assert {s for s, _ in got} == {client.session}
    for (_, mine), theirs in zip(got, sent):
        np.testing.assert_array_equal(mine.observation["observation.state"], theirs.observation["observation.state"])
        np.testing.assert_array_equal(mine.observation["observation.images.cam"],
                                      theirs.observation["observation.images.cam"])
        np.testing.assert_array_equal(mine.action, theirs.action)
        assert (mine.reward, mine.truncated, mine.is_intervention) == (theirs.reward, theirs.truncated,
                                                                         theirs.is_intervention)
        assert (mine.next_observation is None) == (not theirs.done)  # next obs only on an episode's last step
    assert service.stats.transitions == 95 and service.sessions[client.session].duplicates == 0


@pytest.mark.parametrize("resumed", [False, True], ids=["fresh-learner", "learner-resumed-at-seq-39"])
def test_reconnect_after_learner_restart_loses_nothing(resumed):
    first = LearnerService(features(), port=0)
    port = first.start()
    sent = rollout(100)
    client = client_for(first)
    client.connect()
    for t in sent[:50]:
        client.put(t)
    assert client.flush(10.0)
    assert client.outbox_size == 50  # received but in no checkpoint yet: kept
    first.mark_durable({client.session: 39})  # as if a checkpoint had covered 0..39
    client.put(sent[50])
    assert client.flush(10.0)
    assert client.outbox_size == 11  # the ack said 0..39 are durable: dropped, 40..50 kept
    assert len(drain(first, 51)) == 51
    first.stop(0)
    for t in sent[51:]:  # the learner is down: the actor keeps them
        client.put(t)
    assert client.pending == 49
    sessions = {client.session: (39, 39)} if resumed else {}
    second = LearnerService(features(), port=port, sessions=sessions)
    second.start()
    try:
        assert client.flush(15.0), client.stats
        got = drain(second, 60)
        # A resumed learner gets exactly what its checkpoint lacks; a fresh one (its checkpoint gone) gets
        # all the actor kept, and counts the 40 a checkpoint had covered as a gap.
        assert [t.seq for _, t in got] == list(range(40, 100))
        assert client.stats.reconnects >= 1
        assert second.sessions[client.session].gaps == (0 if resumed else 40)
    finally:
        client.close(0.1)
        second.stop(0)


def test_mismatched_features_are_refused_at_connect_on_both_sides(service):
    actor_features = features(state_dim=4)
    actor_features.pop("observation.images.cam")
    client = client_for(service, actor_features)
    with pytest.raises(LearnerRefused) as refused:
        client.connect()
    message = str(refused.value)
    assert "observation.state: the learner expects float32(3,), the actor sends float32(4,)" in message
    assert "the learner expects observation.images.cam uint8(8, 8, 3), the actor does not send it" in message
    assert service.stats.refusals and service.stats.refusals[-1] in message  # the learner logged the same
    client.close(0.1)


def test_outbox_full_of_unreceived_transitions_waits_then_raises(service):
    client = client_for(service, outbox_capacity=5)
    client.connect()
    service.stop(0)
    sent = rollout(6)
    for t in sent[:5]:
        client.put(t)
    started = time.monotonic()
    with pytest.raises(OutboxFull, match=f"127.0.0.1:{service.port}"):
        client.put(sent[5], timeout=0.3)
    assert time.monotonic() - started >= 0.3
    assert client.outbox_size == 5  # nothing dropped
    client.close(0.1)


def test_no_learner_is_a_clear_error_after_connect_timeout():
    config = ActorClientConfig(learner_port=1, connect_timeout_s=0.3, initial_backoff_s=0.05, max_backoff_s=0.1)
    client = ActorClient(features(), config)
    with pytest.raises(TransportError, match=r"no learner at 127\.0\.0\.1:1"):
        client.connect()
    client.close(0.0)


def test_a_frame_larger_than_one_chunk_crosses_the_stream():
    big = {"observation.state": {"dtype": "float32", "shape": [3]}, "action": {"dtype": "float32", "shape": [2]},
           "observation.images.cam": {"dtype": "uint8", "shape": [1024, 1024, 3]}}
    service = LearnerService(big, port=0)
    service.start()
    image = np.random.default_rng(0).integers(0, 255, size=(1024, 1024, 3), dtype=np.uint8)  # 3 MB > 2 MB chunk
    obs = {"observation.state": np.ones(3, np.float32), "observation.images.cam": image}
    try:
        with client_for(service, big) as client:
            client.put(Transition(obs, np.zeros(2, np.float32), 1.0, True, next_observation=obs))
            assert client.flush(10.0)
        (_, got), = drain(service, 1)
        np.testing.assert_array_equal(got.observation["observation.images.cam"], image)
        np.testing.assert_array_equal(got.next_observation["observation.images.cam"], image)
    finally:
        service.stop(0)


def test_chunks_round_trip_and_bad_messages_raise():
    frame = encode_transition(rollout(1)[0])
    pieces = list(protocol.chunks(frame, size=100))
    assert len(pieces) == -(-len(frame) // 100)
    assert [decode_transition(f).seq for f in protocol.frames(pieces)] == [-1]
    with pytest.raises(TransportError, match="chunk flag"):
        list(protocol.frames([b"\x07junk"]))
    with pytest.raises(TransportError, match="not an apprentice"):
        decode_transition(b"nonsense frame")
    with pytest.raises(TransportError, match="needs next_observation"):
        Transition({}, np.zeros(2, np.float32), 0.0, terminated=True)


def test_a_transition_unlike_the_handshake_is_rejected_and_the_actor_says_so(service):
    client = client_for(service)
    client.connect()
    good = rollout(1)[0]
    bad = Transition({**good.observation, "observation.state": np.zeros(5, np.float32)}, good.action, 0.0, False)
    client.put(bad)
    deadline = time.monotonic() + 5
    while not client._fatal and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(TransportError, match=r"rejected a transition: transition 0: observation\.state: the "
                                             r"learner expects float32\(3,\), the actor sends float32\(5,\)"):
        client.put(good)
    assert service.stats.transitions == 0
    client.close(0.1)


def test_access_token_is_checked_and_required_off_loopback(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    service = LearnerService(features(), port=0, token="s3cret")
    service.start()
    try:
        with pytest.raises(LearnerRefused, match="wrong or missing access token"):
            client_for(service).connect()
        wrong = tmp_path / "wrong"
        wrong.write_text("guess\n")
        with pytest.raises(LearnerRefused, match="access token"):
            client_for(service, token_file=str(wrong)).connect()
        with client_for(service, token_file=str(token_file)) as client:
            client.put(rollout(1)[0])
            assert client.flush(5.0)
    finally:
        service.stop(0)
    with pytest.raises(TransportError, match=r"refusing to listen on 0\.0\.0\.0 without an access token"):
        LearnerService(features(), host="0.0.0.0", port=0).start()
    with pytest.raises(TransportError, match=r"client\.token_file"):
        client_for(service, token_file=str(tmp_path / "missing"))


def test_a_restored_session_must_say_ready_before_sending():
    # A learner resumed from a checkpoint knows the session, but an actor that has not said Ready to it may
    # hold a batch built for the learner before (which had received more): refused until it handshakes.
    import grpc

    service = LearnerService(features(), port=0, sessions={"s1": (39, 39)})
    port = service.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            send = channel.stream_unary(protocol.SEND_TRANSITIONS)
            with pytest.raises(grpc.RpcError) as refused:
                send(iter([]), timeout=5, metadata=[(protocol.SESSION_HEADER, "s1")])
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "call Ready again" in refused.value.details()
        assert service.sessions["s1"].received == 39
    finally:
        service.stop(0)
