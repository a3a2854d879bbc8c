"""Policy node overhead: obs -> action latency vs a bare `select_action` on the same inputs.

    python benchmarks/policy_node_latency.py                 # CPU, the demo's ACT size
    python benchmarks/policy_node_latency.py --size lerobot --device cuda
    python benchmarks/policy_node_latency.py --no-ros        # in-process part only

Three measurements, one JSON object:
- bare: `policy.select_action(obs)` per 30 Hz tick (the policy's own queue), tensors prepared once;
- runtime: `PolicyRuntime.step` per tick from raw messages' values (uint8 image, float state):
  sampling, tensor conversion, chunk queue, safety clamp, command encoding — what the node adds;
- ros: the policy node as a process on a real ROS graph fed at 30 Hz by a publisher node; latency
  from the observation's header stamp to the command's arrival, and the command loop's rate/jitter.
Goal (issue 8): runtime - bare < 2 ms at p50 and p99 on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from apprentice.contract import load_contract
from apprentice.deploy import SafetyLimits
from apprentice.deploy.runtime import PolicyRuntime, RuntimeConfig
from apprentice.policies import (
    features_from_dataset,
    load_policy,
    make_config,
    make_policy,
    save_policy,
    stats_to_tensors,
)
from apprentice.resources import config_path

SIZES = {
    # config/train.yaml: what `apprentice demo` trains
    "demo": dict(
        chunk_size=20,
        n_action_steps=10,
        dim_model=128,
        n_heads=4,
        dim_feedforward=512,
        n_encoder_layers=2,
        n_decoder_layers=1,
        n_vae_encoder_layers=2,
        latent_dim=16,
    ),
    # LeRobot's ACT defaults (chunk 100, dim 512, 4 encoder layers)
    "lerobot": dict(chunk_size=100, n_action_steps=100),
}


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
        "n": len(ms),
    }


def build_checkpoint(directory: Path, size: str) -> Path:
    contract = load_contract(config_path("contracts", "sim_reach.yaml"))
    inputs, outputs = features_from_dataset(contract.features)
    config = make_config("act", input_features=inputs, output_features=outputs, **SIZES[size])
    stats = {}
    for key, ft in {**inputs, **outputs}.items():
        shape = (3, 1, 1) if ft.type == "VISUAL" else ft.shape
        stats[key] = {"mean": np.zeros(shape), "std": np.ones(shape)}
    return save_policy(make_policy(config, stats_to_tensors(stats)), directory / "pretrained_model")


def raw_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "observation.state": rng.uniform(-1, 1, 6).astype(np.float32),
        "observation.environment_state": rng.uniform(-0.2, 0.2, 3).astype(np.float32),
        "observation.images.top": rng.integers(0, 255, (96, 128, 3), dtype=np.uint8),
    }


def bench_in_process(checkpoint: Path, device: str, ticks: int) -> dict:
    contract = load_contract(config_path("contracts", "sim_reach.yaml"))
    policy = load_policy(checkpoint, device=device)
    rng = np.random.default_rng(0)
    inputs = [raw_inputs(rng) for _ in range(ticks)]
    runtime = PolicyRuntime(
        policy,
        contract,
        RuntimeConfig(mode="sync"),
        SafetyLimits(contract.action.names, max_relative_step=0.2, lower=-3.0, upper=3.0),
    )
    observations = [runtime.build_observation(x) for x in inputs]  # bare: tensors ready beforehand
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    policy.reset()
    for obs in observations[:20]:  # warm-up (allocator, kernels)
        policy.select_action(obs)
    policy.reset()
    bare, bare_infer = [], []
    n_steps = policy.config.n_action_steps
    for i, obs in enumerate(observations):
        t = time.perf_counter()
        with torch.inference_mode():
            policy.select_action(obs).cpu()
        sync()
        (bare_infer if i % n_steps == 0 else bare).append(time.perf_counter() - t)

    runtime.enable(True)
    period = 1_000_000_000 // contract.fps
    stepped, stepped_infer = [], []
    for i, values in enumerate(inputs):
        tick = (i + 1000) * period
        before = runtime.scheduler.stats.inferences
        t = time.perf_counter()
        for key, value in values.items():
            runtime.push(key, tick - 1_000_000, value)
        outcome = runtime.step(tick)
        took = time.perf_counter() - t
        (stepped_infer if runtime.scheduler.stats.inferences > before else stepped).append(took)
        assert outcome.command is not None, outcome.reason
    runtime.close()
    # Ticks that run the model and ticks served from the action queue are compared separately: the
    # model's time dominates the first kind, the node's own work is all there is in the second.
    b, r = percentiles(bare), percentiles(stepped)
    bi, ri = percentiles(bare_infer), percentiles(stepped_infer)
    return {
        "queue_ticks": {
            "bare_select_action": b,
            "runtime_step": r,
            "overhead_p50_ms": r["p50_ms"] - b["p50_ms"],
            "overhead_p99_ms": r["p99_ms"] - b["p99_ms"],
        },
        "inference_ticks": {
            "bare_select_action": bi,
            "runtime_step": ri,
            "overhead_p50_ms": ri["p50_ms"] - bi["p50_ms"],
            "overhead_p99_ms": ri["p99_ms"] - bi["p99_ms"],
        },
        "overhead_mean_ms": float(np.mean(stepped + stepped_infer) - np.mean(bare + bare_infer)) * 1e3,
    }


def bench_ros(checkpoint: Path, device: str, seconds: float, mode: str) -> dict:
    """Policy node process + an in-process robot stand-in publishing the contract's topics at 30 Hz."""
    import rclpy
    from geometry_msgs.msg import PointStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.setdefault("ROS_DOMAIN_ID", str(np.random.default_rng().integers(10, 100)))
    os.environ.update(env)
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    rclpy.init()
    node = Node("latency_bench")
    arrivals: list[tuple[int, int]] = []  # (obs stamp ns, arrival ns)
    state_pub = node.create_publisher(JointState, "joint_states", 10)
    target_pub = node.create_publisher(PointStamped, "sim/target", 10)
    image_pub = node.create_publisher(Image, "cameras/top/image_raw", qos_profile_sensor_data)
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8).tobytes()
    last_stamp = [0]

    def publish() -> None:
        now = node.get_clock().now()
        stamp = now.to_msg()
        js = JointState(name=names, position=[0.0] * 6)
        js.header.stamp = stamp
        state_pub.publish(js)
        pt = PointStamped()
        pt.header.stamp = stamp
        pt.point.x = 0.2
        target_pub.publish(pt)
        img = Image(height=96, width=128, encoding="rgb8", step=384, data=image)
        img.header.stamp = stamp
        image_pub.publish(img)
        last_stamp[0] = now.nanoseconds

    def on_command(msg: Float64MultiArray) -> None:
        arrivals.append((last_stamp[0], node.get_clock().now().nanoseconds))

    node.create_subscription(Float64MultiArray, "forward_position_controller/commands", on_command, 10)
    node.create_timer(1 / 30, publish)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    log_path = Path(tempfile.gettempdir()) / f"policy_node_latency_{os.getpid()}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apprentice.cli",
            "infer",
            f"--policy.path={checkpoint}",
            f"--device={device}",
            f"--mode={mode}",
            "--enable",
            "--ros-args",
            "-p",
            "diagnostics_period_s:=1.0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while len(arrivals) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        arrivals.clear()
        time.sleep(seconds)
        sample = list(arrivals)
    finally:
        proc.send_signal(2)
        proc.wait(timeout=20)
        log.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if len(sample) < 10:
        raise SystemExit(f"the policy node published {len(sample)} commands; see {log_path}")
    latency = [(arrival - stamp) * 1e-9 for stamp, arrival in sample]
    gaps = np.diff([a for _, a in sample]) * 1e-9
    return {
        "stamp_to_command": percentiles(latency),
        "command_rate_hz": float(1.0 / gaps.mean()),
        "command_interval_jitter": percentiles(list(np.abs(gaps - 1 / 30))),
        "log": str(log_path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--ros-seconds", type=float, default=10.0)
    parser.add_argument("--no-ros", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the node's auto on 2 cores: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build_checkpoint(Path(tmp), args.size)
        result = {
            "benchmark": "policy_node_latency",
            "size": args.size,
            "device": args.device,
            "torch_threads": args.threads,
            "cpu_count": os.cpu_count(),
            "fps": 30,
            "n_action_steps": SIZES[args.size]["n_action_steps"],
        }
        result["in_process"] = bench_in_process(checkpoint, args.device, args.ticks)
        if not args.no_ros:
            for mode in ("sync", "async"):
                result[f"ros_{mode}"] = bench_ros(checkpoint, args.device, args.ros_seconds, mode)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
