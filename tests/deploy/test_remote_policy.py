"""Remote inference on loopback: a real `PolicyServer` (gRPC) and `RemotePolicy` driven by PolicyRuntime."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

grpc = pytest.importorskip("grpc")

from apprentice.contract import load_contract  # noqa: E402
from apprentice.deploy import DeployError  # noqa: E402
from apprentice.deploy.remote import protocol  # noqa: E402
from apprentice.deploy.remote.client import ClientConfig, RemotePolicy  # noqa: E402
from apprentice.deploy.remote.server import PolicyServer, ServerConfig  # noqa: E402
from apprentice.deploy.remote.wire import decode_frame, encode_frame  # noqa: E402
from apprentice.deploy.runtime import OBS_STAMP, OBS_TICK, PolicyRuntime, RuntimeConfig  # noqa: E402
from apprentice.policies import load_policy  # noqa: E402
from apprentice.resources import config_path  # noqa: E402

torch.set_num_threads(1)
TOKEN = "correct-horse-battery-staple"


def sample(i: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    return {
        "observation.state": rng.normal(0, 0.3, 6).astype(np.float32),
        "observation.environment_state": np.array([0.2, 0.0, 0.1], np.float32),
        # A smooth image (what a camera sees), not noise: JPEG's loss is then small.
        "observation.images.top": np.tile(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], (96, 1, 3)),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def contract():
    return load_contract(config_path("contracts", "sim_reach.yaml"))


@pytest.fixture(scope="module")
def policy(tiny_act: Path):
    return load_policy(tiny_act)


@pytest.fixture
def server(policy, tiny_act: Path) -> Iterator[PolicyServer]:
    srv = PolicyServer(policy, ServerConfig(port=0, token=TOKEN), policy_path=str(tiny_act))
    srv.warm_up()  # as `apprentice policy-server` does: torch's first call is slow
    srv.start()
    yield srv
    srv.stop(0)


def client(contract, port: int, **kw) -> RemotePolicy:
    kw.setdefault("token", TOKEN)
    kw.setdefault("connect_timeout_s", 5.0)
    return RemotePolicy(contract, ClientConfig(server=f"127.0.0.1:{port}", **kw))


def drive(rt: PolicyRuntime, seconds: float, fps: float, on_tick=None) -> list:
    """Real-time control loop: push a fresh observation, step, at ``fps`` for ``seconds``."""
    outcomes, period = [], 1.0 / fps
    start = time.monotonic()
    for i in range(int(seconds * fps)):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic_ns()
        for key, value in sample(i).items():
            rt.push(key, now - 1_000_000, value)
        outcomes.append(rt.step(now))
        if on_tick is not None:
            on_tick(i, outcomes[-1])
    return outcomes


def test_remote_chunk_matches_local_inference_and_echoes_its_observation(server, policy, contract) -> None:
    remote = client(contract, server.port, image_codec="png")  # lossless: the same numbers as in-process
    try:
        assert remote.config.type == "act" and remote.config.chunk_size == 10
        assert set(remote.config.input_features) == set(policy.config.input_features)
        rt = PolicyRuntime(remote, contract)
        obs = rt.build_observation(sample(1))
        obs[OBS_TICK], obs[OBS_STAMP] = 42, 123_456_789
        chunk, header = remote.predict_chunk(obs)
        assert header["tick"] == 42 and header["stamp_ns"] == 123_456_789  # the observation it answers
        local = policy.predict_action_chunk(obs)[0].numpy()
        np.testing.assert_allclose(chunk, local, atol=1e-5)
        # JPEG is lossy on the image, so the actions differ a little, not a lot.
        jpeg = client(contract, server.port, image_codec="jpeg", jpeg_quality=90)
        np.testing.assert_allclose(jpeg.predict_chunk(obs)[0], local, atol=0.1)
        assert jpeg.stats.request_bytes < 96 * 128 * 3 / 4  # compressed on the wire (raw: 36 kB)
        jpeg.close()
    finally:
        remote.close()


@pytest.mark.parametrize("mode", ["sync", "async", "ensemble", "policy"])
def test_every_chunking_mode_drives_through_the_server(server, contract, mode: str) -> None:
    remote = client(contract, server.port)
    # The whole chunk per inference: over the network a chunk must outlast the round trip.
    rt = PolicyRuntime(remote, contract, RuntimeConfig(mode=mode, n_action_steps=10, temporal_ensemble_coeff=0.01))
    rt.enable(True)
    try:
        outcomes = drive(rt, 1.0, 20)
    finally:
        rt.close()
    ok = [o for o in outcomes if o.reason == "ok"]
    assert len(ok) >= len(outcomes) // 2, [o.reason for o in outcomes]
    assert all(o.command.shape == (6,) and np.isfinite(o.command).all() for o in ok)
    assert remote.stats.requests >= 2 and rt.watchdog.trips == 0
    values = rt.diagnostics()
    assert values["server_connected"] == "True" and values["server_round_trip_p50_ms"] > 0


class SlowPolicy:
    """The real policy behind a server that needs ``delay_s`` per chunk (a busy GPU, a big model)."""

    def __init__(self, policy, delay_s: float) -> None:
        self.policy, self.delay_s, self.config, self.device = policy, delay_s, policy.config, policy.device

    def predict_action_chunk(self, obs):
        time.sleep(self.delay_s)
        return self.policy.predict_action_chunk(obs)


def test_slow_server_skips_stale_actions_and_never_stalls_the_loop(tmp_path: Path, contract) -> None:
    from deploy_helpers import write_tiny_act

    path = write_tiny_act(tmp_path, chunk_size=20, n_action_steps=20)
    slow = SlowPolicy(load_policy(path), delay_s=0.25)  # 5 ticks at 20 Hz
    srv = PolicyServer(slow, ServerConfig(port=0, token=TOKEN))
    srv.start()
    remote = client(contract, srv.port)
    rt = PolicyRuntime(remote, contract, RuntimeConfig(mode="async", fps=20))
    rt.enable(True)
    commanded_while_waiting = []

    def on_tick(i: int, outcome) -> None:
        if outcome.command is not None and rt.scheduler.inference_in_flight_s > 0:
            commanded_while_waiting.append(i)

    try:
        outcomes = drive(rt, 3.0, 20, on_tick)
    finally:
        rt.close()
        srv.stop(0)
    stats = rt.scheduler.stats
    # The first chunk answered tick 0 but arrived ~5 ticks later: those actions had expired and were skipped.
    assert stats.discarded_actions >= 3
    # No stall: the next chunk was requested while the current one executed, so the arm kept moving while
    # the server worked, and once the first chunk was in, (almost) every tick had an action.
    assert len(commanded_while_waiting) >= 10
    first = next(i for i, o in enumerate(outcomes) if o.command is not None)
    held = [o.reason for o in outcomes[first:] if o.command is None]
    assert len(held) <= len(outcomes[first:]) // 5, held
    assert rt.watchdog.trips == 0 and stats.inferences >= 3


def test_wrong_or_missing_token_is_refused(server, contract) -> None:
    for token in ("wrong", ""):
        with pytest.raises(DeployError, match="refused the connection: wrong or missing access token"):
            client(contract, server.port, token=token)
    # Predict is guarded too, not only Hello.
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        predict = channel.unary_unary(protocol.PREDICT)
        with pytest.raises(grpc.RpcError) as err:
            predict(encode_frame({"type": "observation"}), timeout=5, metadata=(("authorization", "Bearer nope"),))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_feature_mismatch_is_refused_at_connect_time_with_the_reason(server, contract, tmp_path: Path) -> None:
    other = load_contract(config_path("contracts", "so101_two_cameras.yaml"))
    with pytest.raises(DeployError) as err:
        client(other, server.port)
    message = str(err.value)
    assert "feature mismatch" in message and "observation.environment_state" in message
    assert "the contract lacks it" in message and "so101_two_cameras" in message
    # Same keys, a camera of another aspect ratio: the shapes are named (another size of the same aspect
    # ratio is resized to the checkpoint's, as the policy node does).
    raw = yaml.safe_load(config_path("contracts", "sim_reach.yaml").read_text())
    next(o for o in raw["observations"] if o["key"] == "observation.images.top")["shape"] = [48, 80, 3]
    small = tmp_path / "small_camera.yaml"
    small.write_text(yaml.safe_dump(raw))
    with pytest.raises(DeployError, match=r"observation.images.top: the checkpoint expects \(3, 96, 128\), "
                                          r"the contract gives \(3, 48, 80\) \(another aspect ratio"):
        client(load_contract(small), server.port)


def test_protocol_version_mismatch_is_refused(server, contract) -> None:
    hello = encode_frame({"type": "hello", "protocol": protocol.PROTOCOL_VERSION + 1, "features": contract.features})
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, pytest.raises(grpc.RpcError) as err:
        channel.unary_unary(protocol.HELLO)(hello, timeout=5, metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "protocol version mismatch" in err.value.details() and "same apprentice version" in err.value.details()


def test_unreachable_server_fails_at_start_with_what_to_do(contract) -> None:
    with pytest.raises(DeployError, match=r"unreachable after 0.5 s .*apprentice policy-server"):
        client(contract, free_port(), connect_timeout_s=0.5)


def test_malformed_frames_are_errors_not_crashes() -> None:
    header, arrays = decode_frame(encode_frame({"type": "x", "tick": 3}, {"a": np.arange(4, dtype=np.float32)}))
    assert header == {"type": "x", "tick": 3} and arrays["a"].tolist() == [0, 1, 2, 3]
    for bad in (b"", b"GET / HTTP/1.1", encode_frame({"type": "x"}, {"a": np.zeros(8)})[:-8]):
        with pytest.raises(DeployError):
            decode_frame(bad)


def test_tls_with_token(policy, contract, tmp_path: Path) -> None:
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "server.key", tmp_path / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", key, "-out", cert,
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    srv = PolicyServer(policy, ServerConfig(port=0, token=TOKEN, tls_cert=str(cert), tls_key=str(key)))
    srv.start()
    try:
        remote = client(contract, srv.port, tls_ca=str(cert))
        obs = PolicyRuntime(remote, contract).build_observation(sample())
        assert remote.predict_chunk(obs)[0].shape == (10, 6)
        remote.close()
        with pytest.raises(DeployError, match="unreachable"):  # plaintext client, TLS server
            client(contract, srv.port, connect_timeout_s=1.0)
    finally:
        srv.stop(0)


def wait_connected(remote: RemotePolicy, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not remote.connected:
        assert time.monotonic() < deadline, remote.last_error
        time.sleep(0.05)


def test_a_restarted_server_is_checked_again_before_its_chunks_are_used(policy, contract, tmp_path: Path) -> None:
    from deploy_helpers import write_tiny_act

    first = PolicyServer(policy, ServerConfig(port=0, token=TOKEN))
    port = first.start()
    remote = client(contract, port)
    obs = PolicyRuntime(remote, contract).build_observation(sample())
    try:
        assert remote.predict_chunk(obs)[0].shape == (10, 6)
        first.stop(0)
        # Restarted on the same port with a checkpoint for another robot: refused on reconnect, never used.
        other = load_policy(write_tiny_act(tmp_path, "so101_two_cameras"))
        wrong = PolicyServer(other, ServerConfig(port=port, token=TOKEN))
        wrong.start()
        with pytest.raises(DeployError, match=r"lost|restarted"):
            remote.predict_chunk(obs)
        deadline = time.monotonic() + 20
        while "feature mismatch" not in remote.last_error:
            assert time.monotonic() < deadline, remote.last_error
            time.sleep(0.05)
        assert not remote.connected
        with pytest.raises(DeployError, match=r"not connected .*feature mismatch"):
            remote.predict_chunk(obs)
        wrong.stop(0)
        right = PolicyServer(policy, ServerConfig(port=port, token=TOKEN))
        right.start()
        try:
            wait_connected(remote)
            assert remote.server_id == right.server_id
            assert remote.predict_chunk(obs)[0].shape == (10, 6)
        finally:
            right.stop(0)
    finally:
        remote.close()


def test_a_port_in_use_is_refused(server, policy) -> None:
    with pytest.raises(DeployError, match="port in use"):
        PolicyServer(policy, ServerConfig(port=server.port, token=TOKEN)).start()


def test_node_parameters_build_the_client_and_name_a_bad_token_file(tmp_path: Path) -> None:
    from apprentice.deploy.params import PolicyNodeParams

    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    config = PolicyNodeParams(server="gpu-box:50051", server_token_file=str(token_file)).client_config()
    assert config.token == TOKEN and config.server == "gpu-box:50051" and config.image_codec == "jpeg"
    with pytest.raises(DeployError, match=r"server_token_file .*nope: No such file"):
        PolicyNodeParams(server="gpu-box:50051", server_token_file=str(tmp_path / "nope")).client_config()
    with pytest.raises(DeployError, match="expected host:port"):
        PolicyNodeParams(server="gpu-box").client_config()


def test_server_config_refuses_an_open_port_without_a_token() -> None:
    with pytest.raises(DeployError, match="without an access token"):
        ServerConfig(host="0.0.0.0")
    with pytest.raises(DeployError, match="--tls-cert and --tls-key go together"):
        ServerConfig(tls_cert="a.pem")


def start_server(tiny_act: Path, port: int, token_file: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "apprentice.cli", "policy-server", f"--policy.path={tiny_act}", "--device=cpu",
           f"--port={port}", f"--token-file={token_file}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    while not any("serving act" in line for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)
    proc.lines = lines  # type: ignore[attr-defined]
    return proc


def test_server_killed_mid_episode_holds_reconnects_and_resumes(tiny_act: Path, contract, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    server = start_server(tiny_act, port, token_file)
    remote = client(contract, port)
    rt = PolicyRuntime(remote, contract, RuntimeConfig(mode="async", fps=20, n_action_steps=10))
    rt.enable(True)
    try:
        before = drive(rt, 1.5, 20)
        assert sum(o.command is not None for o in before) >= 10
        server.kill()  # SIGKILL: no goodbye, the connection just breaks
        server.wait()
        during = drive(rt, 1.0, 20)
        # The arm holds: a few queued actions may still run, then nothing, with the reason named.
        assert all(o.command is None for o in during[-10:]), [o.reason for o in during]
        reason = during[-1].reason
        assert reason.startswith("watchdog") and "policy server" in reason, reason
        assert not remote.connected
        rt.enable(True)  # re-armed while the server is still down: trips again at once, with the reason
        retry = drive(rt, 0.3, 20)
        assert all(o.command is None for o in retry) and "not connected" in retry[-1].reason, retry[-1].reason

        server = start_server(tiny_act, port, token_file)
        wait_connected(remote)  # reconnected in the background, features checked again
        assert remote.stats.reconnects == 1
        latched = drive(rt, 0.5, 20)
        assert all(o.command is None for o in latched), "a tripped watchdog must not resume by itself"
        rt.enable(True)  # the operator re-arms
        after = drive(rt, 1.5, 20)
        assert sum(o.command is not None for o in after) >= 10, [o.reason for o in after]
    finally:
        rt.close()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0, "".join(server.lines)
    assert "stopped after" in "".join(server.lines)


def test_a_frozen_server_times_out_and_is_dialled_afresh_when_it_thaws(tiny_act: Path, contract, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port = free_port()
    server = start_server(tiny_act, port, token_file)
    remote = client(contract, port, timeout_s=0.5)
    obs = PolicyRuntime(remote, contract).build_observation(sample())
    try:
        assert remote.predict_chunk(obs)[0].shape == (10, 6)
        server.send_signal(signal.SIGSTOP)  # alive, connection open, answering nothing (a hung GPU, a frozen box)
        with pytest.raises(DeployError, match=r"sent no chunk within 0.5 s"):
            remote.predict_chunk(obs)
        assert not remote.connected
        with pytest.raises(DeployError, match="not connected"):  # no second wait for the timeout
            remote.predict_chunk(obs)
        server.send_signal(signal.SIGCONT)
        wait_connected(remote)
        assert remote.predict_chunk(obs)[0].shape == (10, 6)
    finally:
        server.send_signal(signal.SIGCONT)
        remote.close()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0, "".join(server.lines)
