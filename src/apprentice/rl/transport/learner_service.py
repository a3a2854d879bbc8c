"""The learner's gRPC service: receives transitions in order (deduplicated), streams weights out.

The service is only the network edge: transitions land in `inbox` (a queue the learner loop drains),
weights are whatever the loop last gave `publish_parameters`. Dedupe and order are per actor session:
a transition is accepted only as the session's next ``seq``; a resent one (the actor did not get our
reply before the connection dropped) is counted and skipped.
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from apprentice.rl.transport import TransportError, protocol
from apprentice.rl.transport.codec import Transition, decode_message, decode_transition, encode_message

log = logging.getLogger(__name__)


@dataclass
class SessionState:
    received: int = -1  # highest seq accepted
    durable: int = -1  # highest seq a checkpoint holds (the learner loop sets it)
    duplicates: int = 0
    gaps: int = 0  # transitions the actor had to drop (its buffer overflowed while we were down)


@dataclass
class ServiceStats:
    transitions: int = 0
    bytes_in: int = 0
    parameter_pushes: int = 0
    refusals: list[str] = field(default_factory=list)  # every refused handshake, as the actor was told


class LearnerService:
    """Serve on ``host:port`` for a learner expecting ``features`` (key -> {"dtype", "shape"})."""

    def __init__(self, features: Mapping[str, Mapping[str, Any]], host: str = "127.0.0.1", port: int = 0,
                 sessions: Mapping[str, tuple[int, int]] | None = None, max_workers: int = 8,
                 token: str = "") -> None:
        self.features = protocol.feature_table(features)
        self.host, self.requested_port, self.max_workers = host, port, max_workers
        self.token = token
        self.learner_id = uuid.uuid4().hex
        self.inbox: queue.Queue[tuple[str, Transition]] = queue.Queue()
        self.interactions: queue.Queue[dict[str, Any]] = queue.Queue()
        # A resumed learner knows its sessions up to its checkpoint: the actors resend the rest.
        self.sessions = {s: SessionState(durable, durable) for s, (_, durable) in (sessions or {}).items()}
        self.stats = ServiceStats()
        self.step = 0
        self._lock = threading.Lock()
        self._greeted: set[str] = set()  # sessions that said Ready to this learner (not only restored ones)
        self._parameters: tuple[int, bytes] | None = None
        self._new_parameters = threading.Condition()
        self._stopping = threading.Event()
        self._server: Any = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> int:
        import grpc

        from apprentice.deploy.remote.server import is_loopback

        if not self.token and not is_loopback(self.host):
            raise TransportError(
                f"refusing to listen on {self.host} without an access token: anyone who reaches the port could feed "
                "the replay buffer and read the policy; pass --learner.token_file FILE (and --client.token_file on "
                "the actor), or keep host 127.0.0.1 and use an SSH tunnel")

        unary, stream_in = grpc.unary_unary_rpc_method_handler, grpc.stream_unary_rpc_method_handler
        handlers = {
            "Ready": unary(self._ready),
            "SendTransitions": stream_in(self._send_transitions),
            "StreamParameters": grpc.unary_stream_rpc_method_handler(self._stream_parameters),
            "SendInteractions": stream_in(self._send_interactions),
        }
        server = grpc.server(ThreadPoolExecutor(self.max_workers, thread_name_prefix="learner-rpc"),
                             options=protocol.SERVER_OPTIONS)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(protocol.SERVICE, handlers)])
        address = f"{self.host}:{self.requested_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise TransportError(f"learner cannot listen on {address}: {exc}; is the port in use (--port)?") from exc
        if port == 0:
            raise TransportError(f"learner cannot listen on {address}; is the port in use (--port)?")
        server.start()
        self._server, self.port = server, port
        log.info("learner listening on %s:%d", self.host, port)
        return port

    def stop(self, grace_s: float | None = 0.5) -> None:
        self._stopping.set()
        with self._new_parameters:
            self._new_parameters.notify_all()
        if self._server is not None:
            self._server.stop(grace_s).wait()
            self._server = None

    # -- what the learner loop calls -------------------------------------------------------------------
    def publish_parameters(self, step: int, frame: bytes) -> None:
        """New actor weights (an `encode_parameters` frame): every StreamParameters call sends them."""
        with self._new_parameters:
            self._parameters = (step, frame)
            self.stats.parameter_pushes += 1
            self._new_parameters.notify_all()

    def mark_durable(self, upto: Mapping[str, int]) -> None:
        """A checkpoint now holds each session's transitions up to ``upto[session]``."""
        with self._lock:
            for session, seq in upto.items():
                self.sessions.setdefault(session, SessionState()).durable = seq

    # -- RPCs -----------------------------------------------------------------------------------------
    def _authorize(self, context: Any) -> None:
        import grpc

        if not self.token:
            return
        sent = dict(context.invocation_metadata()).get(protocol.TOKEN_HEADER, "")
        # Constant time: the comparison must not tell an attacker how many leading characters were right.
        if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
            log.warning("refused %s: wrong or missing access token", context.peer())
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "wrong or missing access token: pass the learner's token (--client.token_file)")

    def _ready(self, request: bytes, context: Any) -> bytes:
        import grpc

        self._authorize(context)

        try:
            hello = decode_message(request, "hello")
        except TransportError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        problem = protocol.protocol_problem(hello.get("protocol"))
        if problem is None:
            mismatch = protocol.feature_problems(self.features, hello.get("features") or {})
            if mismatch:
                problem = ("observation/action features differ between actor and learner: " + "; ".join(mismatch)
                           + ". Start both from the same config (env and policy features)")
        session = str(hello.get("session") or "")
        if problem is None and not session:
            problem = "the actor's hello has no session id"
        if problem is not None:
            log.error("refused actor %s: %s", context.peer(), problem)
            self.stats.refusals.append(problem)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, problem)
        with self._lock:
            state = self.sessions.setdefault(session, SessionState())
            self._greeted.add(session)
        log.info("actor %s connected (session %s, resuming after seq %d)", context.peer(), session[:8], state.received)
        return encode_message({"type": "welcome", "learner_id": self.learner_id, "last_seq": state.received,
                               "step": self.step})

    def _session(self, context: Any) -> SessionState:
        import grpc

        self._authorize(context)

        session = dict(context.invocation_metadata()).get(protocol.SESSION_HEADER, "")
        with self._lock:
            # A session restored from a checkpoint must still say Ready to this learner first: an actor whose
            # batch was built for the learner before (it had received more) would otherwise skip the seqs
            # this one lacks, which the welcome's last_seq makes it resend.
            state = self.sessions.get(session) if session in self._greeted else None
        if state is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "unknown actor session (the learner restarted): call Ready again")
        return state

    def _send_transitions(self, request_iterator: Iterator[bytes], context: Any) -> bytes:
        import grpc

        state = self._session(context)
        session = dict(context.invocation_metadata())[protocol.SESSION_HEADER]
        try:
            for frame in protocol.frames(request_iterator):
                transition = decode_transition(frame)
                if (problem := protocol.transition_problem(self.features, transition.features())) is not None:
                    raise TransportError(f"transition {transition.seq}: {problem}")
                with self._lock:
                    if transition.seq <= state.received:
                        state.duplicates += 1
                        continue
                    if transition.seq > state.received + 1:
                        missing = transition.seq - state.received - 1
                        state.gaps += missing
                        log.warning("session %s: %d transitions before seq %d never arrived (actor buffer full)",
                                    session[:8], missing, transition.seq)
                    state.received = transition.seq
                    self.stats.transitions += 1
                    self.stats.bytes_in += len(frame)
                self.inbox.put((session, transition))
        except TransportError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        with self._lock:
            return encode_message({"type": "ack", "received": state.received, "durable": state.durable})

    def _stream_parameters(self, request: bytes, context: Any) -> Iterator[bytes]:
        self._session(context)
        sent_step = None
        while not self._stopping.is_set() and context.is_active():
            with self._new_parameters:
                current = self._parameters
                if current is None or current[0] == sent_step:
                    # Woken by a publish or every 0.5 s to notice a cancelled call or a stopping server.
                    self._new_parameters.wait(0.5)
                    continue
            sent_step = current[0]
            yield from protocol.chunks(current[1])

    def _send_interactions(self, request_iterator: Iterator[bytes], context: Any) -> bytes:
        import grpc

        self._session(context)
        count = 0
        try:
            for frame in protocol.frames(request_iterator):
                self.interactions.put(decode_message(frame, "interaction"))
                count += 1
        except TransportError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return encode_message({"type": "ack", "count": count})
