"""Helpers shared by the deploy tests: a tiny real ACT checkpoint, a settable clock, a polling wait, and (for
graph tests) a spun test node that publishes the sim_reach inputs. A uniquely named module, not conftest
(ambiguous when test folders run together); rclpy is imported only by the graph helpers, so plain tests need no ROS."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from apprentice.contract import load_contract
from apprentice.resources import config_path

MS = 1_000_000
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
N = TypeVar("N")


class FakeClock:
    """A nanosecond clock the test moves by hand (`clock.ns += 30 * MS`)."""

    def __init__(self) -> None:
        self.ns = 10_000 * MS

    def __call__(self) -> int:
        return self.ns


def wait_for(predicate: Callable[[], Any], timeout: float, what: Callable[[], str] | str) -> None:
    """Poll `predicate` until it holds; else fail naming `what` (a string, or a callable read only then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")


def spin(make_node: Callable[[], N]) -> Iterator[N]:
    """A fixture body: init rclpy, spin the node `make_node` builds in a thread, tear everything down after."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    node = make_node()
    executor = SingleThreadedExecutor()
    executor.add_node(node)  # type: ignore[arg-type]
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()  # type: ignore[attr-defined]
    rclpy.try_shutdown()
    thread.join(timeout=5)


class SimReachInputs:
    """Publishers of the sim_reach contract's inputs on `node`: joint states, target, top camera (96x128)."""

    def __init__(self, node: Any) -> None:
        from geometry_msgs.msg import PointStamped
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState

        self._node = node
        self._types = JointState, PointStamped, Image
        self.joint_pub = node.create_publisher(JointState, "joint_states", 10)
        self.target_pub = node.create_publisher(PointStamped, "sim/target", 10)
        self.image_pub = node.create_publisher(Image, "cameras/top/image_raw", qos_profile_sensor_data)

    def publish(self, position: np.ndarray, camera_on: bool = True) -> Any:
        """One tick of inputs, all with the same stamp (returned, for other topics of that tick)."""
        joint_state, point_stamped, image = self._types
        stamp = self._node.get_clock().now().to_msg()
        js = joint_state(name=JOINTS, position=position.tolist())
        js.header.stamp = stamp
        self.joint_pub.publish(js)
        target = point_stamped()
        target.header.stamp = stamp
        target.point.x, target.point.y, target.point.z = 0.2, 0.0, 0.1
        self.target_pub.publish(target)
        if camera_on:
            img = image(height=96, width=128, encoding="rgb8", step=128 * 3, data=bytes(96 * 128 * 3))
            img.header.stamp = stamp
            self.image_pub.publish(img)
        return stamp


def write_tiny_act(directory: Path, contract_name: str = "sim_reach", **overrides: object) -> Path:
    """An untrained ACT (random init, real layout on disk) whose features match the contract."""
    import numpy as np

    from apprentice.policies import (
        features_from_dataset,
        make_config,
        make_policy,
        save_policy,
        stats_to_tensors,
    )

    contract = load_contract(config_path("contracts", f"{contract_name}.yaml"))
    inputs, outputs = features_from_dataset(contract.features)
    fields = dict(
        chunk_size=10,
        n_action_steps=5,
        dim_model=64,
        n_heads=4,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_decoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=8,
    )
    fields.update(overrides)
    config = make_config("act", input_features=inputs, output_features=outputs, **fields)
    stats = {}
    for key, ft in {**inputs, **outputs}.items():
        shape = (3, 1, 1) if ft.type == "VISUAL" else ft.shape
        stats[key] = {
            "mean": np.zeros(shape),
            "std": np.ones(shape),
            "min": -np.ones(shape),
            "max": np.ones(shape),
        }
    policy = make_policy(config, stats_to_tensors(stats))
    return save_policy(policy, directory / "pretrained_model")
