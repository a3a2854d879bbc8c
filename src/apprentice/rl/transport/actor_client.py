"""`ActorClient`: the actor's side — a bounded outbox that survives a dropped learner, and the weights.

`put()` numbers each transition (``seq``) and queues it; a sender thread streams what the learner does
not yet hold. A transition leaves the outbox only once the learner says a checkpoint covers it
(``durable``); those it holds in memory but has not checkpointed (``received``) stay while there is room,
so a learner that is killed and resumes from its checkpoint gets them again. When the learner is
unreachable the sender retries with exponential backoff, says Ready again (the learner answers the last
seq it holds) and resends from there — in order, nothing lost, duplicates dropped by the learner.
Only when the outbox is full of transitions the learner has never received does `put()` wait (the
caller's timeout, then `OutboxFull`): losing data silently is never the answer.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from apprentice.rl.transport import TransportError, protocol
from apprentice.rl.transport.codec import (
    Transition,
    decode_message,
    decode_parameters,
    encode_message,
    encode_transition,
)

log = logging.getLogger(__name__)


class LearnerRefused(TransportError):
    """The learner refused the handshake (features or protocol differ): retrying cannot help."""


class OutboxFull(TransportError):
    """The outbox is full of transitions the learner has not received, and the wait timed out."""


@dataclass
class ActorClientConfig:
    learner_host: str = "127.0.0.1"  # lerobot's actor_learner_config.learner_host
    learner_port: int = protocol.DEFAULT_PORT
    outbox_capacity: int = 100_000  # transitions kept for resending (images: ~100 kB each at 2x128x128)
    max_batch: int = 64  # transitions per SendTransitions call
    connect_timeout_s: float = 30.0  # at start-up, how long to wait for the learner
    call_timeout_s: float = 10.0
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    token_file: str = ""  # the learner's access token (its learner.token_file), first line of this file

    def __post_init__(self) -> None:
        if self.outbox_capacity < 1 or self.max_batch < 1:
            raise TransportError("outbox_capacity and max_batch must be >= 1")
        if not 0 < self.initial_backoff_s <= self.max_backoff_s:
            raise TransportError("backoff: need 0 < initial_backoff_s <= max_backoff_s")


@dataclass
class ActorStats:
    sent: int = 0
    resent: int = 0  # sent again after a reconnect
    reconnects: int = 0
    evicted_unprotected: int = 0  # dropped while only in the learner's memory (not yet checkpointed)
    parameters_received: int = 0
    interactions_sent: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)


class ActorClient:
    def __init__(self, features: Mapping[str, Any], config: ActorClientConfig | None = None,
                 session: str | None = None) -> None:
        import grpc

        self.config = config or ActorClientConfig()
        self.features = protocol.feature_table(features)
        self.session = session or uuid.uuid4().hex  # a new actor process is a new session: seq from 0
        self.stats = ActorStats()
        self._outbox: deque[tuple[int, bytes]] = deque()  # (seq, frame), seq ascending
        self._interactions: deque[bytes] = deque()
        self._next_seq = 0
        self._received = -1
        self._durable = -1
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._parameters: tuple[int, dict[str, Any]] | None = None
        self._highest_sent = -1
        self._fatal = ""  # set when the learner rejects what we send; put() raises it
        address = f"{self.config.learner_host}:{self.config.learner_port}"
        self._channel = grpc.insecure_channel(address, options=protocol.CHANNEL_OPTIONS)
        self.address = address
        token = protocol.read_token(self.config.token_file, "client.token_file")
        self._auth = ((protocol.TOKEN_HEADER, f"Bearer {token}"),) if token else ()
        self._metadata = ((protocol.SESSION_HEADER, self.session), *self._auth)
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------------------
    def connect(self) -> dict[str, Any]:
        """Handshake (retrying until connect_timeout_s), then start the sender and weights threads."""
        welcome = self._handshake(deadline=time.monotonic() + self.config.connect_timeout_s)
        for target, name in ((self._send_loop, "actor-send"), (self._parameters_loop, "actor-params")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return welcome

    def close(self, flush_timeout_s: float = 5.0) -> bool:
        """Wait up to ``flush_timeout_s`` for the learner to receive everything; True if it did."""
        flushed = self.flush(flush_timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._channel.close()
        for thread in self._threads:
            thread.join(timeout=5.0)
        return flushed

    def __enter__(self) -> ActorClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the actor loop's calls -----------------------------------------------------------------------
    def put(self, transition: Transition, timeout: float | None = None) -> int:
        """Queue one transition for the learner; returns its seq. Waits while the outbox is full."""
        frame_of: Callable[[int], bytes] = lambda seq: encode_transition(_with_seq(transition, seq))  # noqa: E731
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._fatal:
                raise TransportError(self._fatal)
            while len(self._outbox) >= self.config.outbox_capacity:
                if self._outbox[0][0] <= self._received:  # the learner holds it (in memory): make room
                    self._outbox.popleft()
                    self.stats.evicted_unprotected += 1
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise OutboxFull(f"the outbox is full: {len(self._outbox)} transitions the learner at "
                                     f"{self.address} has not received ({self.stats.last_error or 'no reply'}); "
                                     "is the learner up?")
                self._cond.wait(left if left is not None else 1.0)
            seq = self._next_seq
            self._next_seq += 1
            self._outbox.append((seq, frame_of(seq)))
            self._cond.notify_all()
        return seq

    def send_interaction(self, message: Mapping[str, Any]) -> None:
        """An episode summary for the learner's log (sent with the next batch)."""
        with self._cond:
            self._interactions.append(encode_message({"type": "interaction", **message}))
            self._cond.notify_all()

    def poll_parameters(self) -> tuple[int, dict[str, Any]] | None:
        """The newest weights since the last call, as (learner step, state dict), or None."""
        with self._cond:
            latest, self._parameters = self._parameters, None
        return latest

    def flush(self, timeout_s: float) -> bool:
        """Wait until the learner has received every queued transition."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._received < self._next_seq - 1 or self._interactions:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    @property
    def pending(self) -> int:
        """Transitions the learner has not received yet."""
        return self._next_seq - 1 - self._received

    @property
    def outbox_size(self) -> int:
        return len(self._outbox)

    # -- threads --------------------------------------------------------------------------------------
    def _handshake(self, deadline: float | None) -> dict[str, Any]:
        """Ready until the learner answers (backoff) or refuses; resets what to send from its last_seq."""
        import grpc

        hello = encode_message({"type": "hello", "protocol": protocol.PROTOCOL_VERSION, "session": self.session,
                                "features": self.features})
        backoff = self.config.initial_backoff_s
        ready = self._channel.unary_unary(protocol.READY)
        while not self._stop.is_set():
            try:
                welcome = decode_message(ready(hello, timeout=self.config.call_timeout_s, metadata=self._auth),
                                         "welcome")
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED):
                    raise LearnerRefused(f"learner at {self.address} refused this actor: {exc.details()}") from exc
                self._note_error(exc)
                if deadline is not None and time.monotonic() + backoff > deadline:
                    raise TransportError(
                        f"no learner at {self.address} ({self.stats.last_error}); start it first "
                        "(`apprentice learner --config …`) or check --learner.host/port") from exc
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            with self._cond:
                self._received = max(int(welcome["last_seq"]), self._durable)
                self._cond.notify_all()
            self._connected.set()
            return welcome
        raise TransportError("actor client closed while connecting")

    def _send_loop(self) -> None:
        import grpc

        send = self._channel.stream_unary(protocol.SEND_TRANSITIONS)
        interact = self._channel.stream_unary(protocol.SEND_INTERACTIONS)
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set() and self._received >= self._next_seq - 1 and not self._interactions:
                    self._cond.wait(0.5)
                # seqs in the outbox are consecutive (it only loses its oldest): the first unreceived one is
                # at a known offset, no scan of a long outbox per call
                start = max(0, self._received + 1 - self._outbox[0][0]) if self._outbox else 0
                batch = [f for _, f in itertools.islice(self._outbox, start, start + self.config.max_batch)]
                first = self._received + 1
                interactions = list(self._interactions)
            if self._stop.is_set():
                return
            try:
                if batch:
                    ack = decode_message(send(_stream(batch), timeout=self.config.call_timeout_s,
                                              metadata=self._metadata), "ack")
                    self._acknowledge(first, len(batch), int(ack["received"]), int(ack["durable"]))
                if interactions:
                    interact(_stream(interactions), timeout=self.config.call_timeout_s, metadata=self._metadata)
                    with self._cond:
                        for _ in interactions:
                            self._interactions.popleft()
                        self.stats.interactions_sent += len(interactions)
                        self._cond.notify_all()
            except (grpc.RpcError, TransportError) as exc:
                if isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    # The learner cannot use what we send (a transition unlike the handshake's features):
                    # resending it would fail forever, so the actor's next put() raises this instead.
                    with self._cond:
                        self._fatal = f"learner at {self.address} rejected a transition: {exc.details()}"
                        self._cond.notify_all()
                    log.error("%s", self._fatal)
                    return
                if isinstance(exc, grpc.RpcError):
                    self._note_error(exc)
                else:
                    self.stats.last_error = str(exc)
                self._reconnect()

    def _acknowledge(self, first: int, count: int, received: int, durable: int) -> None:
        with self._cond:
            resent = max(0, min(self._highest_sent, first + count - 1) - first + 1)
            self.stats.resent += resent
            self.stats.sent += count - resent
            self._highest_sent = max(self._highest_sent, first + count - 1)
            self._received, self._durable = received, durable
            while self._outbox and self._outbox[0][0] <= durable:
                self._outbox.popleft()
            self._cond.notify_all()

    def _reconnect(self) -> None:
        self._connected.clear()
        self.stats.reconnects += 1
        try:
            self._handshake(deadline=None)
        except LearnerRefused as exc:
            # A learner restarted with other features: nothing this actor sends can be used.
            self.stats.last_error = str(exc)
            self.stats.errors.append(str(exc))
            log.error("%s", exc)
            self._stop.wait(self.config.max_backoff_s)
        except TransportError:
            return

    def _parameters_loop(self) -> None:
        import grpc

        stream = self._channel.unary_stream(protocol.STREAM_PARAMETERS)
        backoff = self.config.initial_backoff_s
        while not self._stop.is_set():
            if not self._connected.is_set():
                # Also here, not only in the sender: an idle actor must still notice a restarted learner.
                try:
                    self._handshake(deadline=time.monotonic() + self.config.call_timeout_s)
                except LearnerRefused:
                    self._stop.wait(self.config.max_backoff_s)
                    continue
                except TransportError:
                    continue
            try:
                for frame in protocol.frames(stream(b"", metadata=self._metadata)):
                    step, state_dict = decode_parameters(frame)
                    with self._cond:
                        self._parameters = (step, state_dict)
                        self.stats.parameters_received += 1
                    backoff = self.config.initial_backoff_s
            except (grpc.RpcError, TransportError) as exc:
                if self._stop.is_set():
                    return
                if isinstance(exc, grpc.RpcError):
                    self._note_error(exc)
                    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # the learner forgot this session
                        self._connected.clear()
                        continue
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_s)

    def _note_error(self, exc: Any) -> None:
        self.stats.last_error = f"{exc.code().name}: {exc.details()}"


def _stream(frames: list[bytes]) -> Iterator[bytes]:
    for frame in frames:
        yield from protocol.chunks(frame)


def _with_seq(transition: Transition, seq: int) -> Transition:
    transition.seq = seq
    return transition
