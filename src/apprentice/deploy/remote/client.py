"""`RemotePolicy`: a policy whose model runs in an `apprentice policy-server` on another machine.

It has the interface `PolicyRuntime` drives (``config`` with the checkpoint's features,
``predict_action_chunk``, ``select_action``, ``reset``), so sync, async and ensemble chunking work
unchanged: the async scheduler's lookahead sends the next observation while the current chunk
executes, and actions for ticks that passed in transit are dropped by tick index.

Faults never block the control loop for longer than ``timeout_s``: a lost server makes
``predict_action_chunk`` raise at once (the runtime's watchdog holds the arm and latches) while a
background thread reconnects; a restarted server is re-checked (protocol, features) before its
chunks are used again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apprentice import __version__
from apprentice.deploy import DeployError
from apprentice.deploy.remote import protocol
from apprentice.deploy.remote.wire import CODECS, decode_frame, encode_frame
from apprentice.deploy.runtime import OBS_STAMP, OBS_TICK
from apprentice.deploy.stats import LatencyStats

log = logging.getLogger(__name__)


@dataclass
class ClientConfig:
    server: str  # host:port of the policy server
    token: str = ""  # access token (the server's --token / --token-file)
    tls_ca: str = ""  # PEM file to trust (the server's certificate or its CA); "" = plaintext
    tls_server_name: str = ""  # the name in the server's certificate, when it is not the host
    timeout_s: float = 1.0  # one Predict longer than this is a fault (the watchdog holds)
    connect_timeout_s: float = 10.0  # at start-up, how long to wait for the server
    image_codec: str = "jpeg"  # jpeg | png | raw (see README, "Remote inference")
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        host, _, port = self.server.rpartition(":")
        if not host or not port.isdigit():
            raise DeployError(f"server={self.server!r}: expected host:port, e.g. 127.0.0.1:{protocol.DEFAULT_PORT}")
        if self.image_codec not in CODECS:
            raise DeployError(f"image codec {self.image_codec!r}: choose one of {', '.join(CODECS)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise DeployError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise DeployError("server timeouts must be > 0 s")


@dataclass
class RemotePolicyConfig:
    """What the server said about its checkpoint; the fields PolicyRuntime reads from a policy's config."""

    type: str
    path: str = ""
    chunk_size: int | None = None
    n_action_steps: int | None = None
    temporal_ensemble_coeff: float | None = None
    input_features: dict[str, Any] = field(default_factory=dict)
    output_features: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"  # where observations are assembled: here, before they are sent


@dataclass
class RemoteStats:
    requests: int = 0
    reconnects: int = 0
    request_bytes: int = 0  # all Predict requests together (images compressed)
    round_trip: LatencyStats = field(default_factory=LatencyStats)  # send -> chunk back, here
    server_infer: LatencyStats = field(default_factory=LatencyStats)  # the model's share, on the server


class ServerRefused(DeployError):
    """The server answered and said no (token, protocol or features): retrying at once will not help."""


def _rpc_error(exc: Exception) -> str:
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code) and callable(details):
        return f"{code().name}: {details()}"
    return f"{type(exc).__name__}: {exc}"


class RemotePolicy:
    """Connects at construction (a refused or unreachable server raises DeployError) and predicts remotely."""

    def __init__(self, contract: Any, options: ClientConfig) -> None:

        self.options = options
        self.contract_name = str(getattr(contract, "source", "") or "")
        self.features = dict(contract.features)
        self.stats = RemoteStats()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reconnector: threading.Thread | None = None
        self._queue: list[np.ndarray] = []  # select_action's own queue (mode=policy)
        self.last_error = ""
        self._metadata = ((protocol.TOKEN_HEADER, f"Bearer {options.token}"),) if options.token else ()
        self._open_channel()
        try:
            self.config = self._connect(options.connect_timeout_s)
        except DeployError:
            self._channel.close()
            raise
        self.server_id = self._server_id
        self._ready = True

    def _open_channel(self) -> None:
        import grpc

        options = self.options
        channel_options = [
            *protocol.CHANNEL_OPTIONS,
            # gRPC's own reconnect backoff, shorter than its defaults (1 s doubling to 120 s): a robot
            # waiting on a restarted server should see it within a second.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        if options.tls_ca:
            from apprentice.deploy.remote.server import read_pem

            credentials = grpc.ssl_channel_credentials(root_certificates=read_pem(options.tls_ca, "TLS CA"))
            if options.tls_server_name:
                channel_options.append(("grpc.ssl_target_name_override", options.tls_server_name))
            self._channel = grpc.secure_channel(options.server, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(options.server, options=channel_options)
        self._hello_rpc = self._channel.unary_unary(protocol.HELLO)
        self._predict_rpc = self._channel.unary_unary(protocol.PREDICT)

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def connected(self) -> bool:
        return self._ready

    # -- connection -----------------------------------------------------------------------------------
    def _connect(self, timeout_s: float) -> RemotePolicyConfig:
        """Hello: protocol and features checked by the server (and here); raises DeployError with why not."""
        import grpc

        from apprentice.policies.config import PolicyFeature

        hello = encode_frame({"type": "hello", "protocol": protocol.PROTOCOL_VERSION, "apprentice": __version__,
                              "contract": self.contract_name, "features": self.features})
        target = self.options.server
        try:
            reply = self._hello_rpc(hello, timeout=timeout_s, metadata=self._metadata, wait_for_ready=True)
        except grpc.RpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED):
                raise ServerRefused(f"policy server {target} refused the connection: {exc.details()}") from exc
            raise DeployError(
                f"policy server {target} unreachable after {timeout_s:g} s ({_rpc_error(exc)}); start "
                "`apprentice policy-server` there, and check host:port, the token and TLS (server_tls_ca) match"
            ) from exc
        header, _ = decode_frame(reply)
        if (problem := protocol.protocol_problem(header.get("protocol"), f"policy server {target}")) is not None:
            raise ServerRefused(problem)
        policy = header.get("policy") or {}

        def features(table: dict) -> dict[str, PolicyFeature]:
            return {k: PolicyFeature(v["type"], tuple(v["shape"])) for k, v in table.items()}

        self._server_id = str(header.get("server_id"))
        return RemotePolicyConfig(
            type=str(policy.get("type", "?")),
            path=str(policy.get("path", "")),
            chunk_size=policy.get("chunk_size"),
            n_action_steps=policy.get("n_action_steps"),
            temporal_ensemble_coeff=policy.get("temporal_ensemble_coeff"),
            input_features=features(policy.get("input_features") or {}),
            output_features=features(policy.get("output_features") or {}),
        )

    def _lost(self, why: str, new_channel: bool = False) -> None:
        """Stop using the connection and reconnect in the background (once)."""
        with self._lock:
            self._ready = False
            self.last_error = why
            if self._reconnector is None or not self._reconnector.is_alive():
                self._reconnector = threading.Thread(
                    target=self._reconnect, args=(new_channel,), name="policy-reconnect", daemon=True
                )
                self._reconnector.start()

    def _reconnect(self, new_channel: bool) -> None:
        if new_channel:
            # After a timeout the connection itself is suspect (a frozen server, a half-open TCP connection
            # to a machine that vanished): a new channel dials afresh instead of waiting on the old one.
            old = self._channel
            self._open_channel()
            old.close()
        # Hello waits for the channel (gRPC retries the TCP connection with its backoff meanwhile); a refusal
        # (a restarted server with another checkpoint, a changed token) is retried with a backoff of our own,
        # since it lasts until someone fixes the server.
        delay = 0.5
        while not self._closed.is_set():
            try:
                self.config = self._connect(1.0)
            except ServerRefused as exc:
                self.last_error = str(exc)
                self._closed.wait(delay)
                delay = min(5.0, delay * 2)
                continue
            except DeployError as exc:
                self.last_error = str(exc)
                continue
            except ValueError:  # the channel was closed under us: close() is ending the thread
                return
            with self._lock:
                self.server_id = self._server_id
                self._ready = True
                self.stats.reconnects += 1
            log.info("reconnected to policy server %s", self.options.server)
            return

    # -- inference ------------------------------------------------------------------------------------
    def _encode(self, obs: dict[str, Any]) -> bytes:
        import torch

        arrays: dict[str, np.ndarray] = {}
        codecs: dict[str, str] = {}
        for key, feature in self.config.input_features.items():
            value = obs[key][0]
            if feature.type == "VISUAL":
                # Back to the camera's uint8 HWC: exact for frames that came as uint8 (x * 255 / 255 rounds back).
                value = value.mul(255.0).round_().clamp_(0, 255).to(dtype=torch.uint8).permute(1, 2, 0)
                codecs[key] = self.options.image_codec
            arrays[key] = value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)
        task = obs.get("task") or [""]
        header = {"type": "observation", "server_id": self.server_id, "tick": obs.get(OBS_TICK),
                  "stamp_ns": obs.get(OBS_STAMP), "task": task[0] if isinstance(task, list | tuple) else str(task)}
        return encode_frame(header, arrays, codecs, self.options.jpeg_quality)

    def predict_chunk(self, obs: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """(chunk (T, A) float32, the reply header: tick, stamp_ns, infer_s) for one observation."""
        import grpc

        target = self.options.server
        if not self._ready:
            raise DeployError(f"policy server {target} is not connected ({self.last_error}); holding, "
                              "reconnecting in the background")
        request = self._encode(obs)
        started = time.perf_counter()
        try:
            reply = self._predict_rpc(request, timeout=self.options.timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                self._lost(f"no chunk within {self.options.timeout_s:g} s", new_channel=True)
                raise DeployError(f"policy server {target} sent no chunk within {self.options.timeout_s:g} s "
                                  "(server_timeout_s); holding, reconnecting") from exc
            if code == grpc.StatusCode.FAILED_PRECONDITION:  # a restarted server: check it again
                self._lost(_rpc_error(exc))
                raise DeployError(f"policy server {target} restarted; re-checking protocol and features "
                                  "before using it") from exc
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
                self._lost(_rpc_error(exc))
                raise DeployError(f"policy server {target} lost ({_rpc_error(exc)}); holding, reconnecting") from exc
            raise DeployError(f"policy server {target}: {_rpc_error(exc)}") from exc
        round_trip = time.perf_counter() - started
        header, arrays = decode_frame(reply)
        if header.get("server_id") != self.server_id:
            # gRPC reconnected by itself to a restarted server: its checkpoint is unchecked, so not this chunk.
            self._lost("the server restarted; checking its checkpoint again")
            raise DeployError(f"policy server {target} restarted; re-checking protocol and features before use")
        if header.get("tick") != obs.get(OBS_TICK) or header.get("stamp_ns") != obs.get(OBS_STAMP):
            raise DeployError(f"policy server {target} answered observation {header.get('tick')} "
                              f"to request {obs.get(OBS_TICK)}")
        chunk = arrays.get("action")
        if chunk is None:
            raise DeployError(f"policy server {target} sent a chunk without 'action'")
        self.stats.requests += 1
        self.stats.request_bytes += len(request)
        self.stats.round_trip.add(round_trip)
        self.stats.server_infer.add(float(header.get("infer_s") or 0.0))
        return chunk, header

    def predict_action_chunk(self, obs: dict[str, Any]) -> Any:
        """(1, T, A) tensor, like a local policy's."""
        import torch

        chunk, _ = self.predict_chunk(obs)
        return torch.from_numpy(np.array(chunk)).unsqueeze(0)

    def select_action(self, obs: dict[str, Any]) -> Any:
        """mode=policy over the network: a plain queue of n_action_steps actions per chunk."""
        import torch

        if not self._queue:
            chunk, _ = self.predict_chunk(obs)
            self._queue = list(chunk[: self.config.n_action_steps or len(chunk)])
        return torch.from_numpy(np.array(self._queue.pop(0))).unsqueeze(0)

    def reset(self) -> None:
        self._queue = []

    def diagnostics(self) -> dict[str, float | str]:
        """The link's figures for the node's /diagnostics (PolicyRuntime.diagnostics adds them)."""
        out: dict[str, float | str] = {"server": self.options.server, "server_connected": str(self._ready)}
        out.update({f"server_round_trip_{k}": v for k, v in self.stats.round_trip.summary().items() if k != "n"})
        out.update({f"server_infer_{k}": v for k, v in self.stats.server_infer.summary().items() if k != "n"})
        out["server_reconnects"] = float(self.stats.reconnects)
        if self.stats.requests:
            out["server_request_kb"] = self.stats.request_bytes / self.stats.requests / 1024
        if not self._ready:
            out["server_error"] = self.last_error
        return out

    def close(self) -> None:
        self._closed.set()
        if self._reconnector is not None:
            self._reconnector.join(timeout=2.0)  # its Hello waits 1 s at most; then no new channel can appear
        self._channel.close()
