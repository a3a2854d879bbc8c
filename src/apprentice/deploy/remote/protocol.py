"""What node and server say to each other, and the checks that make a mismatch fail at connect time.

Two unary gRPC methods on the service ``apprentice.remote.v1.PolicyServer``, each taking and
returning one `wire` frame (raw bytes: no protobuf, no generated code):

- ``Hello``: the client sends ``{"type": "hello", "protocol", "apprentice", "contract", "features"}``
  (``features`` = the contract's dataset features: key -> dtype, shape, names). The server answers
  ``{"type": "welcome", "protocol", "apprentice", "server_id", "device", "policy"}`` (``policy``: type,
  path, chunk_size, n_action_steps, temporal_ensemble_coeff, input_features, output_features), or
  refuses with FAILED_PRECONDITION and a message naming every mismatch (protocol version, missing
  feature, shape, action size).
- ``Predict``: ``{"type": "observation", "server_id", "tick", "stamp_ns", "task"}`` plus one array per
  input feature (images as JPEG/PNG, see `wire`); ``server_id`` is the one from the Welcome, so a
  restarted server (new id, maybe another checkpoint) refuses with FAILED_PRECONDITION until the
  client has said Hello again. The answer ``{"type": "chunk", "tick", "stamp_ns",
  "server_id", "infer_s", "decode_s"}`` plus the array ``action`` (chunk_size, action_dim) float32
  echoes the tick and stamp of the observation it answers.

Every call carries ``authorization: Bearer <token>`` metadata when the server has a token; a wrong or
missing token is UNAUTHENTICATED.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROTOCOL_VERSION = 1
SERVICE = "apprentice.remote.v1.PolicyServer"
HELLO = f"/{SERVICE}/Hello"
PREDICT = f"/{SERVICE}/Predict"
DEFAULT_PORT = 50051
TOKEN_HEADER = "authorization"
# Frames are small (a JPEG per camera), but raw images from several cameras can pass gRPC's 4 MB default.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # A dead peer with no RST (cable pulled, machine off) shows within keepalive_time + timeout.
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 3000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
SERVER_OPTIONS = [
    # gRPC sets SO_REUSEPORT by default: a second server on the port would then silently share the
    # robot's requests with the first. Off, so it fails to bind instead.
    ("grpc.so_reuseport", 0),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 4000),
    ("grpc.http2.max_pings_without_data", 0),
]


def feature_table(features: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """PolicyFeature-like objects -> JSON ``{key: {"type", "shape"}}``."""
    return {k: {"type": f.type, "shape": list(f.shape)} for k, f in features.items()}


def feature_problems(
    policy_inputs: Mapping[str, Any], policy_outputs: Mapping[str, Any], contract_features: Mapping[str, dict]
) -> list[str]:
    """Every way the checkpoint's features and the client's contract features disagree (empty: they fit)."""
    from apprentice.policies.config import PolicyError, features_from_dataset
    from apprentice.policies.image_resize import resize_problem

    try:
        have_in, have_out = features_from_dataset(dict(contract_features))
    except (KeyError, TypeError, ValueError, PolicyError) as exc:
        return [f"the client's contract features are malformed ({exc})"]
    problems = []
    for key, feature in policy_inputs.items():
        got = have_in.get(key)
        if got is None:
            problems.append(f"the checkpoint needs {key} {feature.type} {tuple(feature.shape)}, the contract lacks it")
        elif feature.type == "VISUAL":
            # Another size of the same shape is fine: frames are resized to the checkpoint's (image_resize).
            if (problem := resize_problem(key, tuple(got.shape), tuple(feature.shape))) is not None:
                problems.append(problem)
        elif tuple(got.shape) != tuple(feature.shape):
            problems.append(
                f"{key}: the checkpoint expects {tuple(feature.shape)}, the contract gives {tuple(got.shape)}"
            )
    action, got = policy_outputs.get("action"), have_out.get("action")
    if action is not None:
        if got is None:
            problems.append("the contract has no action feature")
        elif tuple(got.shape) != tuple(action.shape):
            problems.append(f"action: the checkpoint outputs {tuple(action.shape)}, the contract's action is "
                            f"{tuple(got.shape)}")
    return problems


def protocol_problem(theirs: Any, who: str) -> str | None:
    """A message when the other end speaks another protocol version (None when it matches)."""
    if theirs == PROTOCOL_VERSION:
        return None
    return (
        f"protocol version mismatch: the {who} speaks remote-inference protocol {theirs}, this end speaks "
        f"{PROTOCOL_VERSION}; install the same apprentice version on the robot and on the server"
    )
