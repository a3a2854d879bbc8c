"""A Foxglove WebSocket client for tests (subprotocol foxglove.sdk.v1, what foxglove-sdk 0.30 speaks): subscribe
to channels by topic and collect their messages.

Spoken with the `websockets` library against the server foxglove-sdk runs; RawImage payloads are decoded
with protobuf from the schema the server advertises."""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from websockets.sync.client import connect

MESSAGE_DATA = 0x01  # binary opcode: u32 subscription id, u64 log time (ns), payload


def _protobuf_class(channel: dict[str, Any]) -> Any:
    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel["schema"]))
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(channel["schemaName"]))


def collect(port: int, wanted: dict[str, int], timeout_s: float = 30.0) -> dict[str, list[tuple[int, Any]]]:
    """Connect, subscribe to each topic in `wanted` once advertised, and return (log_time, message) lists
    once each topic has its count; JSON payloads as dicts, protobuf payloads as messages."""
    got: dict[str, list[tuple[int, Any]]] = {t: [] for t in wanted}
    by_sub: dict[int, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    with connect(f"ws://127.0.0.1:{port}", subprotocols=["foxglove.sdk.v1"], open_timeout=timeout_s,
                 max_size=None) as ws:
        while any(len(got[t]) < n for t, n in wanted.items()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"foxglove client: got {({t: len(v) for t, v in got.items()})} of {wanted}; "
                                   f"subscribed to {[t for t, _ in by_sub.values()]}")
            try:
                frame = ws.recv(timeout=left)
            except TimeoutError:
                continue
            if isinstance(frame, str):
                op = json.loads(frame)
                if op.get("op") == "advertise":
                    subs = []
                    for ch in op["channels"]:
                        if ch["topic"] in wanted and ch["topic"] not in [t for t, _ in by_sub.values()]:
                            sub_id = len(by_sub) + 1
                            decode = _protobuf_class(ch) if ch["encoding"] == "protobuf" else None
                            by_sub[sub_id] = (ch["topic"], decode)
                            subs.append({"id": sub_id, "channelId": ch["id"]})
                    if subs:
                        ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
                continue
            if frame[0] != MESSAGE_DATA:
                continue
            sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
            topic, decode = by_sub[sub_id]
            payload = frame[13:]
            got[topic].append((log_time, decode.FromString(payload) if decode else json.loads(payload)))
    return got
