"""`PolicyServer`: one checkpoint behind gRPC, for robots whose own computer has no GPU.

Stateless per request: each ``Predict`` carries a whole observation and gets the chunk predicted
from it, so a client that reconnects (or a second robot) needs no session, and a retried request
cannot corrupt anything. Inference is serialized by a lock: one model, one device.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apprentice import __version__
from apprentice.deploy import DeployError
from apprentice.deploy.remote import protocol
from apprentice.deploy.remote.wire import decode_frame, encode_frame

log = logging.getLogger(__name__)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"  # loopback unless told otherwise: the server drives a robot
    port: int = protocol.DEFAULT_PORT  # 0 = any free port (`PolicyServer.port` says which)
    token: str = ""  # "" = no access token (only allowed on a loopback host)
    tls_cert: str = ""  # PEM certificate chain; with tls_key, serve TLS only
    tls_key: str = ""
    max_workers: int = 4  # concurrent requests decoded in parallel; inference itself is one at a time

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise DeployError("--tls-cert and --tls-key go together: pass both PEM files, or neither")
        if not self.token and not is_loopback(self.host):
            raise DeployError(
                f"refusing to serve on {self.host} without an access token: anyone who reaches the port could "
                "drive the robot; pass --token-file FILE (and --tls-cert/--tls-key), or bind 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise DeployError(f"--port must be 0..65535, got {self.port}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DeployError(f"cannot read the {what} {path}: {exc.strerror}; pass a readable PEM file") from exc


class PolicyServer:
    """Serves ``policy`` (an apprentice Policy in eval mode) over gRPC; `start()`, then `stop()`."""

    def __init__(self, policy: Any, config: ServerConfig | None = None, policy_path: str = "") -> None:
        self.policy = policy
        self.config = config or ServerConfig()
        self.policy_path = policy_path
        self.server_id = uuid.uuid4().hex  # a restarted server is a new one: clients re-check their features
        self._lock = threading.Lock()
        self._server: Any = None
        self.port = 0
        self.requests = 0

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> int:
        """Bind and serve in the background; returns the bound port."""
        import grpc

        handlers = {
            "Hello": grpc.unary_unary_rpc_method_handler(self._hello),
            "Predict": grpc.unary_unary_rpc_method_handler(self._predict),
        }
        server = grpc.server(ThreadPoolExecutor(max_workers=self.config.max_workers, thread_name_prefix="policy-rpc"),
                             options=protocol.SERVER_OPTIONS)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(protocol.SERVICE, handlers)])
        address = f"{self.config.host}:{self.config.port}"
        try:
            if self.config.tls_cert:
                pair = (read_pem(self.config.tls_key, "TLS key"), read_pem(self.config.tls_cert, "TLS certificate"))
                port = server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpcio raises where older versions returned 0
            raise DeployError(f"cannot listen on {address}: {exc}; is the port in use?") from exc
        if port == 0:
            raise DeployError(f"cannot listen on {address}; is the port in use or the host not this machine's?")
        server.start()
        self._server, self.port = server, port
        return port

    def stop(self, grace_s: float | None = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace_s).wait()
            self._server = None

    def warm_up(self) -> float:
        """One inference on a zero observation (CUDA init, kernel selection) so the first real request is fast."""
        config = self.policy.config
        arrays: dict[str, np.ndarray] = {}
        for key, feature in config.input_features.items():
            if feature.type == "VISUAL":
                c, h, w = feature.shape
                arrays[key] = np.zeros((h, w, c), np.uint8)
            else:
                arrays[key] = np.zeros(tuple(feature.shape), np.float32)
        started = time.perf_counter()
        self._infer(arrays, "")
        return time.perf_counter() - started

    # -- RPCs -----------------------------------------------------------------------------------------
    def _authorize(self, context: Any) -> None:
        import grpc

        if not self.config.token:
            return
        sent = dict(context.invocation_metadata()).get(protocol.TOKEN_HEADER, "")
        expected = f"Bearer {self.config.token}"
        # Constant time: the comparison must not tell an attacker how many leading characters were right.
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            log.warning("refused a request from %s: wrong or missing access token", context.peer())
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "wrong or missing access token: pass the server's token (-p server_token_file:=FILE)")

    def _decode(self, request: bytes, context: Any, kind: str) -> tuple[dict, dict]:
        import grpc

        try:
            header, arrays = decode_frame(request)
        except DeployError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if header.get("type") != kind:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"expected a {kind!r} frame, got {header.get('type')!r}")
        return header, arrays

    def _hello(self, request: bytes, context: Any) -> bytes:
        import grpc

        self._authorize(context)
        header, _ = self._decode(request, context, "hello")
        config = self.policy.config
        problems = []
        if (problem := protocol.protocol_problem(header.get("protocol"), "client")) is not None:
            problems.append(problem)
        else:
            mismatch = protocol.feature_problems(config.input_features, config.output_features,
                                                 header.get("features") or {})
            if mismatch:
                where = f" {self.policy_path}" if self.policy_path else ""
                problems.append(
                    f"feature mismatch between contract {header.get('contract', '?')!r} and the {config.type} "
                    f"checkpoint{where}: {'; '.join(mismatch)}. Deploy with the contract the policy's dataset "
                    "was recorded with, or serve the checkpoint trained for this robot"
                )
        if problems:
            log.warning("refused %s: %s", context.peer(), problems[0])
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, problems[0])
        log.info("client %s connected (contract %s)", context.peer(), header.get("contract"))
        return encode_frame({
            "type": "welcome",
            "protocol": protocol.PROTOCOL_VERSION,
            "apprentice": __version__,
            "server_id": self.server_id,
            "device": str(getattr(self.policy, "device", "cpu")),
            "policy": {
                "type": config.type,
                "path": self.policy_path,
                "chunk_size": getattr(config, "chunk_size", None),
                "n_action_steps": getattr(config, "n_action_steps", None),
                "temporal_ensemble_coeff": getattr(config, "temporal_ensemble_coeff", None),
                "input_features": protocol.feature_table(config.input_features),
                "output_features": protocol.feature_table(config.output_features),
            },
        })

    def _predict(self, request: bytes, context: Any) -> bytes:
        import grpc

        self._authorize(context)
        started = time.perf_counter()
        header, arrays = self._decode(request, context, "observation")
        decoded = time.perf_counter()
        if header.get("server_id") != self.server_id:
            # The client checked its features against another server (this one restarted, maybe with another
            # checkpoint): it must say Hello again before anything of it is used.
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "this policy server restarted since the client's Hello: connect again")
        missing = [k for k in self.policy.config.input_features if k not in arrays]
        if missing:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"observation lacks {', '.join(missing)}")
        try:
            chunk = self._infer(arrays, str(header.get("task") or ""))
        except Exception as exc:  # the client trips its watchdog on this message; the server keeps serving
            log.exception("inference failed")
            context.abort(grpc.StatusCode.INTERNAL, f"inference failed on the server: {type(exc).__name__}: {exc}")
        self.requests += 1
        reply = {"type": "chunk", "tick": header.get("tick"), "stamp_ns": header.get("stamp_ns"),
                 "server_id": self.server_id, "decode_s": decoded - started,
                 "infer_s": time.perf_counter() - decoded}
        return encode_frame(reply, {"action": chunk})

    def _infer(self, arrays: dict[str, np.ndarray], task: str) -> np.ndarray:
        """The same raw batched observation PolicyRuntime.build_observation makes, then one chunk."""
        import torch

        from apprentice.policies.image_resize import fit_image

        device = getattr(self.policy, "device", "cpu")
        obs: dict[str, Any] = {}
        for key in self.policy.config.input_features:
            tensor = torch.from_numpy(np.array(arrays[key]))  # a copy: frombuffer views are read-only
            if tensor.dtype == torch.uint8 and tensor.ndim == 3:
                # HWC uint8 -> CHW [0, 1] at the checkpoint's trained size (as PolicyRuntime does)
                tensor = fit_image(tensor, self.policy.config, key)
            obs[key] = tensor.float().unsqueeze(0).to(device)
        obs["task"] = [task]
        with self._lock, torch.inference_mode():
            chunk = self.policy.predict_action_chunk(obs)
        return chunk[0].float().cpu().numpy().astype(np.float32)
