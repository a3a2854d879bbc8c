"""Remote inference: obs -> action latency and action gaps, in-process vs a policy server over loopback.

    python benchmarks/remote_policy_latency.py                 # ~1 min: 3 links x sync/async, 8 s each
    python benchmarks/remote_policy_latency.py --seconds 20 --size lerobot

A real-time 30 Hz control loop (`PolicyRuntime`, fresh observations every tick) drives the same ACT
checkpoint three ways: in-process; through `apprentice policy-server` (a subprocess) on loopback; and
through an in-process TCP proxy on loopback that adds 25 ms each way (a 50 ms round trip) and loses 5%
of the segments. No netem here (the kernel lacks sch_netem), so loss is modelled as TCP recovers it:
a lost segment arrives one retransmission timeout (200 ms, Linux's minimum RTO) late and holds up
the bytes behind it. Also measured: the image codecs on the wire (bytes, encode+decode time).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apprentice.contract import load_contract
from apprentice.deploy.remote.client import ClientConfig, RemotePolicy
from apprentice.deploy.remote.wire import decode_frame, encode_frame
from apprentice.deploy.runtime import PolicyRuntime, RuntimeConfig
from apprentice.policies import load_policy
from apprentice.resources import config_path
from policy_node_latency import SIZES, build_checkpoint, percentiles


class LossyDelayProxy:
    """TCP proxy 127.0.0.1:port -> 127.0.0.1:target delaying each segment ``one_way_s``, losing ``loss`` of them."""

    def __init__(self, target: int, one_way_s: float = 0.025, loss: float = 0.05, rto_s: float = 0.2) -> None:
        self.target, self.one_way_s, self.loss, self.rto_s = target, one_way_s, loss, rto_s
        self.rng = random.Random(0)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lost = self.segments = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        import queue

        pending: queue.Queue = queue.Queue()

        def deliver() -> None:
            while (item := pending.get()) is not None:
                at, data = item
                time.sleep(max(0.0, at - time.monotonic()))
                try:
                    dst.sendall(data)
                except OSError:
                    return
            dst.close()

        threading.Thread(target=deliver, daemon=True).start()
        last = 0.0
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                pending.put(None)
                return
            self.segments += 1
            at = time.monotonic() + self.one_way_s
            if self.rng.random() < self.loss:
                self.lost += 1
                at += self.rto_s
            last = max(last, at)  # in order: a retransmitted segment holds up what follows it
            pending.put((last, data))

    def close(self) -> None:
        self.sock.close()


def camera_frame(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A camera-like frame: smooth shading, a few objects, sensor noise (noise alone would defeat any codec)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([90 + 60 * x / w, 110 + 40 * y / h, np.full_like(x, 120)], -1)
    for cx, cy, r, color in ((0.3, 0.6, 0.12, (200, 40, 40)), (0.7, 0.4, 0.08, (40, 160, 60))):
        img[(x / w - cx) ** 2 + (y / h - cy) ** 2 < r**2] = color
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def bench_codecs() -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for h, w in ((96, 128), (480, 640)):
        frame = camera_frame(h, w, rng)
        for codec in ("raw", "png", "jpeg"):
            times = []
            for _ in range(30):
                t = time.perf_counter()
                blob = encode_frame({}, {"img": frame}, {"img": codec}, jpeg_quality=90)
                _, arrays = decode_frame(blob)
                times.append(time.perf_counter() - t)
            err = float(np.abs(arrays["img"].astype(np.int16) - frame).mean())
            out[f"{h}x{w}_{codec}"] = {"kb": len(blob) / 1024, "encode_decode_ms": float(np.median(times) * 1e3),
                                        "mean_abs_error": err}
    return out


def control_loop(rt: PolicyRuntime, seconds: float, fps: float) -> dict:
    rng = np.random.default_rng(1)
    frame = camera_frame(96, 128, rng)
    period, start, published = 1.0 / fps, time.monotonic(), []
    rt.enable(True)
    n = int(seconds * fps)
    for i in range(n):
        time.sleep(max(0.0, start + i * period - time.monotonic()))
        now = time.monotonic_ns()
        rt.push("observation.state", now, rng.uniform(-1, 1, 6).astype(np.float32))
        rt.push("observation.environment_state", now, np.array([0.2, 0.0, 0.1], np.float32))
        rt.push("observation.images.top", now, frame)
        outcome = rt.step(now)
        if outcome.command is not None:
            published.append(time.monotonic())
            rt.record_publish(outcome, time.monotonic_ns())
    rt.enable(False)
    st = rt.scheduler.stats
    gaps = np.diff(published) if len(published) > 1 else np.array([0.0])
    result = {
        # observation sent -> its chunk usable (encode, network, server inference, decode)
        "obs_to_chunk": percentiles(st.inference_s[2:] or [0.0]),
        # the tick's observation -> its command (sync: includes the blocking round trip)
        "obs_to_command": {k: v for k, v in rt.obs_to_command.summary().items() if k in ("p50_ms", "p99_ms")},
        "action_gap": percentiles(list(gaps)),
        "ticks": n,
        "commanded_ticks": len(published),
        "stale_actions_skipped": st.discarded_actions,
        "inferences": st.inferences,
        "watchdog_trips": rt.watchdog.trips,
    }
    result["obs_to_chunk"].pop("n", None)
    result["action_gap"].pop("n", None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    contract = load_contract(config_path("contracts", "sim_reach.yaml"))
    tmp = Path(tempfile.mkdtemp(prefix="remote_bench_"))
    checkpoint = build_checkpoint(tmp, args.size)
    local = load_policy(checkpoint)
    chunk = local.config.chunk_size
    results: dict = {"size": args.size, "fps": args.fps, "seconds": args.seconds, "chunk_size": chunk,
                     "codecs": bench_codecs()}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "apprentice.cli", "policy-server", f"--policy.path={checkpoint}",
                               "--device=cpu", f"--port={port}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    proxy = LossyDelayProxy(port)
    try:
        for line in server.stdout:
            if "serving" in line:
                break
        links = {"in_process": None, "loopback": port, "rtt50ms_loss5pct": proxy.port}
        for name, link in links.items():
            for mode in ("sync", "async"):
                policy = local if link is None else RemotePolicy(
                    contract, ClientConfig(server=f"127.0.0.1:{link}", timeout_s=2.0))
                config = RuntimeConfig(mode=mode, fps=args.fps, n_action_steps=chunk, action_timeout_s=3.0)
                rt = PolicyRuntime(policy, contract, config)
                results[f"{name}_{mode}"] = control_loop(rt, args.seconds, args.fps)
                if link is not None:
                    results[f"{name}_{mode}"]["request_kb"] = policy.stats.request_bytes / policy.stats.requests / 1024
                rt.close()
        results["proxy"] = {"segments": proxy.segments, "lost": proxy.lost, "one_way_ms": 25, "rto_ms": 200}
    finally:
        proxy.close()
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
