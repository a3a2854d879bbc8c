"""What actor and learner say to each other, and the checks that refuse a mismatch at connect time.

Four methods on ``apprentice.rl.v1.LearnerService`` (lerobot's LearnerService shape), each stream
message a raw byte string (gRPC generic handlers with identity serializers):

- ``Ready`` (unary): the actor's ``hello`` frame ``{"protocol", "session", "features"}`` (``features``:
  observation/action key -> ``{"dtype", "shape"}``); the learner answers ``welcome`` ``{"learner_id",
  "last_seq", "step"}`` — ``last_seq`` is the last transition of this session it holds (-1: none), so a
  reconnecting actor resends exactly what the learner lacks — or aborts FAILED_PRECONDITION naming every
  feature that differs (the learner logs the same line).
- ``SendTransitions`` (client stream → one reply): one `wire` frame per transition, header ``{"type":
  "transition", "seq", "reward", "terminated", "truncated", "is_intervention", "success"}`` and the arrays
  ``observation.*`` and ``action`` (and ``next.observation.*`` on an episode's last transition: every
  other next observation is the following transition's observation, so it is not sent twice). The reply
  ``{"received", "durable"}``: the highest seq now held, and the highest one a learner checkpoint covers.
- ``StreamParameters`` (server stream): the actor's weights as safetensors bytes behind a frame header
  ``{"type": "parameters", "step"}``, first the current ones, then each newer version.
- ``SendInteractions`` (client stream): JSON episode summaries (reward, length, intervention rate) the
  learner logs.

Every call carries ``authorization: Bearer <token>`` when the learner has an access token (a wrong or
missing one is UNAUTHENTICATED); a learner on a non-loopback address refuses to start without one.
Every call after Ready carries ``x-session`` metadata; a learner that does not know the session (it
restarted) aborts FAILED_PRECONDITION and the actor says Ready again. A frame larger than `CHUNK_BYTES`
travels as several stream messages: each message is one flag byte (0: more follows, 1: last piece)
and a slice of the frame — lerobot's TransferState in one byte.

Why raw bytes and no .proto: there is no protoc step at build time, no generated ``*_pb2.py`` tied
to one protobuf runtime, and the frames are the ones `apprentice.deploy.remote.wire` already defines
(JSON header + arrays, no pickle, readable from any language). Nothing received is unpickled: arrays
are typed buffers, weights are safetensors, so a hostile peer can send bad data but never code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
SERVICE = "apprentice.rl.v1.LearnerService"
READY = f"/{SERVICE}/Ready"
SEND_TRANSITIONS = f"/{SERVICE}/SendTransitions"
STREAM_PARAMETERS = f"/{SERVICE}/StreamParameters"
SEND_INTERACTIONS = f"/{SERVICE}/SendInteractions"
DEFAULT_PORT = 50051  # lerobot's learner_port
SESSION_HEADER = "x-session"
TOKEN_HEADER = "authorization"  # "Bearer <token>" on every call when the learner has a token
CHUNK_BYTES = 2 * 1024 * 1024  # lerobot's chunk size: well under gRPC's 4 MB default message limit
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # A dead peer with no RST (cable pulled) shows within keepalive_time + timeout.
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 3000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after the learner comes back (gRPC's default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),  # a second learner on the port fails to bind instead of sharing the actor
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 4000),
    ("grpc.http2.max_pings_without_data", 0),
]
_MORE, _LAST = b"\x00", b"\x01"


def chunks(frame: bytes, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The stream messages of one frame (flag byte + slice)."""
    view = memoryview(frame)
    for start in range(0, max(len(view), 1), size):
        piece = view[start : start + size]
        yield (_LAST if start + size >= len(view) else _MORE) + bytes(piece)


def frames(messages: Iterable[bytes]) -> Iterator[bytes]:
    """Whole frames from a stream of `chunks` messages."""
    parts: list[bytes] = []
    for message in messages:
        if not message or message[:1] not in (_MORE, _LAST):
            from apprentice.rl.transport import TransportError

            raise TransportError("a stream message lacks its chunk flag: is the peer an apprentice actor/learner?")
        parts.append(message[1:])
        if message[:1] == _LAST:
            yield b"".join(parts)
            parts = []


def feature_table(arrays: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"dtype", "shape"}}`` of a feature spec (values: arrays or ``{"dtype", "shape"}`` dicts)."""
    table = {}
    for key, value in arrays.items():
        if isinstance(value, Mapping):
            table[key] = {"dtype": str(value["dtype"]), "shape": [int(d) for d in value["shape"]]}
        else:
            array = np.asarray(value)
            table[key] = {"dtype": array.dtype.name, "shape": list(array.shape)}
    return table


def feature_problems(learner: Mapping[str, Mapping[str, Any]], actor: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every way the learner's and the actor's features differ (empty: they fit)."""
    problems = []
    for key in sorted(set(learner) | set(actor)):
        mine, theirs = learner.get(key), actor.get(key)
        if theirs is None:
            problems.append(f"the learner expects {key} {_describe(mine)}, the actor does not send it")
        elif mine is None:
            problems.append(f"the actor sends {key} {_describe(theirs)}, the learner does not expect it")
        elif _describe(mine) != _describe(theirs):
            problems.append(f"{key}: the learner expects {_describe(mine)}, the actor sends {_describe(theirs)}")
    return problems


def transition_problem(learner: Mapping[str, Mapping[str, Any]], sent: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why one transition does not fit the handshake's features (None: it fits)."""
    problems = feature_problems(learner, sent)
    return "; ".join(problems) if problems else None


def _describe(feature: Mapping[str, Any] | None) -> str:
    if feature is None:
        return "-"
    return f"{feature['dtype']}{tuple(int(d) for d in feature['shape'])}"


def read_token(token_file: str, flag: str) -> str:
    """The access token from ``token_file`` (first line), or "" when no file is given."""
    if not token_file:
        return ""
    from apprentice.deploy import DeployError
    from apprentice.deploy.remote import read_token as read_first_line

    try:
        return read_first_line(token_file=str(Path(token_file).expanduser()), flag=flag)
    except DeployError as exc:
        from apprentice.rl.transport import TransportError

        raise TransportError(str(exc)) from exc


def protocol_problem(theirs: Any) -> str | None:
    if theirs == PROTOCOL_VERSION:
        return None
    return (f"protocol version mismatch: the actor speaks actor/learner protocol {theirs}, the learner "
            f"{PROTOCOL_VERSION}; install the same apprentice version on both machines")
