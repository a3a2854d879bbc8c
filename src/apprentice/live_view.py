"""A live view of a contract's features in Foxglove: a WebSocket server on 127.0.0.1 (Foxglove's own SDK)
with one channel per feature, fed with the messages a recording or a deployed policy sees.

Channels are named by feature key, as in the dataset: each camera (`observation.images.<name>`) is a
`foxglove.RawImage` (rgb8, what the Image panel shows); each numeric feature (`observation.state`,
`action`, ...) and the policy's `command` is a JSON object {timestamp, <name>: value, ...} in dataset units,
so the Plot panel plots `/action.shoulder_pan`. Values go through the contract's own decoding, so the view
shows exactly what the recorder stores and the policy is fed. Open it in Foxglove: "Open connection" →
`ws://127.0.0.1:8765`. No ROS here: the viewer node wires topics to `LiveView.log`.
"""

from __future__ import annotations

import time
from typing import Any

from apprentice.contract import Contract, ContractError, FeatureSpec

HOST = "127.0.0.1"  # loopback only; from another machine: `ssh -L 8765:127.0.0.1:8765 robot`
DEFAULT_PORT = 8765  # Foxglove's default for a WebSocket connection


class LiveViewError(RuntimeError):
    """The live view cannot start (port taken) or a message does not fit its feature."""


def command_spec(contract: Contract) -> FeatureSpec:
    """The policy's command topic read back into action values (the inverse of `action.encode_values`)."""
    a = contract.action
    return FeatureSpec(key="command", topic=contract.command_topic, msg_type=contract.command_type,
                       names=list(a.names), units=a.units, scale=a.scale, offset=a.offset, source=contract.source)


def _vector_schema(spec: FeatureSpec) -> dict[str, Any]:
    stamp = {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}}
    return {"type": "object", "title": spec.key,
            "properties": {"timestamp": stamp, **{_field(n): {"type": "number"} for n in spec.names}}}


def _field(name: str) -> str:
    return name.replace(".", "_")  # a dot would split Foxglove's message path (`/cmd.linear_x`, not `.linear.x`)


class LiveView:
    """Foxglove WebSocket server + one channel per feature; `log(key, msg)` decodes and sends one message.

    Images are sent at most `max_image_hz` per camera (0 = every frame): raw RGB at 30 Hz is tens of MB/s,
    more than a viewer needs. Numeric features are always sent."""

    def __init__(self, contract: Contract, port: int = DEFAULT_PORT, max_image_hz: float = 10.0,
                 with_command: bool = True) -> None:
        if max_image_hz < 0:
            raise LiveViewError(f"max_image_hz must be >= 0, got {max_image_hz}")
        self.specs = {s.key: s for s in contract.specs}
        if with_command:
            self.specs["command"] = command_spec(contract)
        try:
            import foxglove
            from foxglove.channels import RawImageChannel
            from foxglove.messages import RawImage, Timestamp
        except ImportError:
            raise LiveViewError("live view: foxglove-sdk is not installed; pip install 'apprentice[viz]' "
                                "(or foxglove-sdk)") from None
        self._raw_image, self._timestamp = RawImage, Timestamp  # imported here so a missing SDK is one line
        self.min_image_gap_ns = int(1e9 / max_image_hz) if max_image_hz else 0
        self._last_image_ns: dict[str, int] = {}
        self.context = foxglove.Context()  # our own: nothing else logged in this process reaches the viewer
        try:
            self.server = foxglove.start_server(name=f"apprentice {contract.robot_type}", host=HOST, port=port,
                                                context=self.context)
        except RuntimeError as e:
            raise LiveViewError(f"live view: cannot listen on {HOST}:{port} ({e}); set another port "
                                "(0 picks a free one)") from None
        self.channels: dict[str, Any] = {}
        for key, spec in self.specs.items():
            if spec.is_image:
                self.channels[key] = RawImageChannel(key, context=self.context)
            else:
                self.channels[key] = foxglove.Channel(key, schema=_vector_schema(spec), message_encoding="json",
                                                      context=self.context)
        self.sent = dict.fromkeys(self.specs, 0)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def topics(self) -> dict[str, tuple[str, list[str]]]:
        """ROS topic -> (message type, feature keys read from it): what the node subscribes to."""
        out: dict[str, tuple[str, list[str]]] = {}
        for key, spec in self.specs.items():
            msg_type, keys = out.setdefault(spec.topic, (spec.msg_type, []))
            if msg_type != spec.msg_type:
                raise LiveViewError(f"topic '{spec.topic}': features {keys} read it as {msg_type} but '{key}' as "
                                    f"{spec.msg_type}; fix the contract")
            keys.append(key)
        return out

    def log(self, key: str, msg: Any, now_ns: int | None = None) -> bool:
        """Decode `msg` as feature `key` and send it; False when an image was skipped by the rate limit."""
        spec = self.specs[key]
        stamp_ns = spec.stamp_ns(msg) or now_ns or time.time_ns()
        if spec.is_image:
            last = self._last_image_ns.get(key)
            if last is not None and 0 <= stamp_ns - last < self.min_image_gap_ns:
                return False
        try:
            value = spec.decode(msg)
        except ContractError as e:
            raise LiveViewError(f"live view: {e}") from None
        stamp = self._timestamp(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
        if spec.is_image:
            height, width = value.shape[:2]
            self.channels[key].log(self._raw_image(timestamp=stamp, frame_id=key, width=width, height=height,
                                            encoding="rgb8", step=width * 3, data=value.tobytes()),
                                   log_time=stamp_ns)
            self._last_image_ns[key] = stamp_ns
        else:
            message: dict[str, Any] = {"timestamp": {"sec": stamp.sec, "nsec": stamp.nsec}}
            message.update({_field(n): float(v) for n, v in zip(spec.names, value)})
            self.channels[key].log(message, log_time=stamp_ns)
        self.sent[key] += 1
        return True

    def close(self) -> None:
        """Stop the server (safe to call twice)."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
