"""Input device latency: an event on the device -> the follower's SYNC_WRITE on the virtual servo bus.

    python benchmarks/teleop_device_latency.py [--trials 30] [--devices joy,keyboard,phone]

One process, a real ROS graph: the driver node on a virtual SO-101 follower (rate_hz 100) and the teleop
node (fps 60) with each device source in turn. Each trial starts motion from rest and times the first
SYNC_WRITE whose Goal_Position for shoulder_pan differs from the resting goal:
- joy: a sensor_msgs/Joy message (dead-man held, stick 0 -> full) published by a peer node, as joy_node would;
- keyboard: a key byte written into the pseudo-terminal the terminal keyboard reads;
- phone: a DeviceOrientationEvent dispatched in the served page in headless Chromium (time taken in the
  page, `performance.timeOrigin + performance.now()`), through the page's websocket (falls back to a
  websocket client speaking the page's protocol when Chromium is not installed).
Prints one JSON object: per device p50/p90/max in ms and the loop rates that bound them (a 60 Hz teleop
tick waits 8 ms on average, a 100 Hz bus loop 5 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Joy

from apprentice.motors.sim_bus import SYNC_WRITE
from apprentice.nodes.driver_node import DriverNode
from apprentice.nodes.teleop_node import TeleopNode
from apprentice.robots import load_robot
from apprentice.robots.virtual_arm import make_virtual_arm

TELEOP_FPS, DRIVER_HZ = 60.0, 100.0


class GoalWatch:
    """Wraps the virtual bus's packet dispatch: wall time of every SYNC_WRITE and motor 1's goal in it."""

    def __init__(self, virtual: object) -> None:
        self.writes: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        dispatch = virtual._dispatch

        def watched(target: int, inst: int, params: bytes) -> None:
            if inst == SYNC_WRITE:
                length, body = params[1], params[2:]  # SCS: address, length, then (id, data) blocks
                for i in range(0, len(body) - length + 1, length + 1):
                    if body[i] == 1:
                        with self._lock:
                            self.writes.append((time.time(), int.from_bytes(body[i + 1 : i + 3], "little")))
            dispatch(target, inst, params)

        virtual._dispatch = watched

    def goal(self) -> int | None:
        with self._lock:
            return self.writes[-1][1] if self.writes else None

    def first_change_after(self, t0: float, resting: int, timeout: float = 1.0) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for t, goal in self.writes:
                    if t >= t0 and goal != resting:
                        return t - t0
            time.sleep(0.001)
        return None


def settle(watch: GoalWatch, seconds: float = 0.25) -> int:
    time.sleep(seconds)
    return watch.goal()


def run_trials(watch: GoalWatch, trials: int, rest: Callable[[int], None], go: Callable[[int], float]) -> list[float]:
    latencies = []
    for i in range(trials):
        rest(i)
        resting = settle(watch)
        t0 = go(i)
        latency = watch.first_change_after(t0, resting)
        if latency is not None:
            latencies.append(latency * 1e3)
    rest(trials)
    return latencies


def summary(latencies: list[float], trials: int) -> dict[str, float]:
    a = np.array(latencies)
    if a.size == 0:
        return {"trials": trials, "measured": 0}
    return {
        "trials": trials,
        "measured": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p90_ms": round(float(np.percentile(a, 90)), 2),
        "max_ms": round(float(a.max()), 2),
        "mean_ms": round(float(a.mean()), 2),
    }


def bench_joy(context: object, add: Callable[[Node], Node], watch: GoalWatch, trials: int) -> list[float]:
    peer = add(Node("joystick", context=context))
    pub = peer.create_publisher(Joy, "joy", 10)
    add(TeleopNode(context=context, parameter_overrides=_params(source="joy", device_config="gamepad_joints")))
    held = [0] * 15
    held[9] = 1  # LB: the dead-man
    stop = threading.Event()
    stick = [0.0]

    def autorepeat() -> None:  # joy_node's 20 Hz autorepeat keeps the device alive at rest
        while not stop.is_set():
            pub.publish(Joy(axes=[stick[0], 0, 0, 0, 0, 0], buttons=held))
            time.sleep(0.05)

    thread = threading.Thread(target=autorepeat, daemon=True)
    thread.start()

    def rest(i: int) -> None:
        stick[0] = 0.0
        pub.publish(Joy(axes=[0.0] * 6, buttons=held))

    def go(i: int) -> float:
        stick[0] = 1.0 if i % 2 == 0 else -1.0
        t0 = time.time()
        pub.publish(Joy(axes=[stick[0], 0, 0, 0, 0, 0], buttons=held))
        return t0

    try:
        return run_trials(watch, trials, rest, go)
    finally:
        stop.set()
        thread.join()


def bench_keyboard(context: object, add: Callable[[Node], Node], watch: GoalWatch, trials: int) -> list[float]:
    master, slave = os.openpty()
    add(TeleopNode(context=context, parameter_overrides=_params(
        source="keyboard", device=os.ttyname(slave), device_config="keyboard_joints")))  # fmt: skip

    def go(i: int) -> float:
        t0 = time.time()
        os.write(master, b"1" if i % 2 == 0 else b"q")
        return t0

    try:
        return run_trials(watch, trials, lambda i: None, go)
    finally:
        os.close(master)
        os.close(slave)


def bench_phone(context: object, add: Callable[[Node], Node], watch: GoalWatch, trials: int) -> tuple[list, str]:
    teleop = add(TeleopNode(context=context, parameter_overrides=_params(
        source="phone", device_config="phone_joints", phone_port=0)))  # fmt: skip
    url = teleop.source.device.url
    paths = (shutil.which("chromium"), shutil.which("chromedriver"))
    if all(paths):
        return _phone_in_chromium(url, paths, watch, trials), "chromium page (DeviceOrientationEvent)"
    return _phone_over_websocket(url, watch, trials), "websocket client (no chromium here)"


def _phone_in_chromium(url: str, paths: tuple, watch: GoalWatch, trials: int) -> list[float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):  # fmt: skip
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="apprentice-bench-")
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(paths[1]), options=options)
    try:
        browser.get(url)
        while not browser.execute_script("return window.apprentice.open"):
            time.sleep(0.05)
        angle = [0.0]
        orient = ("const t = performance.timeOrigin + performance.now();"
                  "window.dispatchEvent(new DeviceOrientationEvent('deviceorientation',"
                  "{alpha: arguments[0], beta: 0, gamma: 0})); return t / 1000;")  # fmt: skip
        browser.execute_script(orient, angle[0])
        ActionChains(browser).click_and_hold(browser.find_element(By.ID, "deadman")).perform()

        def go(i: int) -> float:
            angle[0] += 5.0 if i % 2 == 0 else -5.0
            return float(browser.execute_script(orient, angle[0]))

        return run_trials(watch, trials, lambda i: None, go)
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _phone_over_websocket(url: str, watch: GoalWatch, trials: int) -> list[float]:
    from websockets.sync.client import connect

    with connect(url.replace("http", "ws") + "ws") as ws:
        angle = [0.0]
        stop = threading.Event()
        lock = threading.Lock()

        def send() -> None:
            with lock:
                ws.send(json.dumps({"type": "state", "alpha": angle[0], "beta": 0, "gamma": 0, "buttons": ["deadman"]}))

        def heartbeat() -> None:
            while not stop.is_set():
                send()
                time.sleep(0.033)

        thread = threading.Thread(target=heartbeat, daemon=True)
        thread.start()

        def go(i: int) -> float:
            angle[0] += 5.0 if i % 2 == 0 else -5.0
            t0 = time.time()
            send()
            return t0

        try:
            return run_trials(watch, trials, lambda i: None, go)
        finally:
            stop.set()
            thread.join()


def _params(**values: object) -> list[Parameter]:
    base = {"fps": TELEOP_FPS, "max_relative_target": 0.2}
    return [Parameter(k, value=v) for k, v in {**base, **values}.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--devices", default="joy,keyboard,phone")
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ["HF_LEROBOT_CALIBRATION"] = tempfile.mkdtemp(prefix="no-calibration-")
    result: dict[str, object] = {"teleop_fps": TELEOP_FPS, "driver_rate_hz": DRIVER_HZ, "load_avg": os.getloadavg()[0]}
    for device in args.devices.split(","):
        context = rclpy.Context()
        rclpy.init(context=context)
        executor = MultiThreadedExecutor(num_threads=3, context=context)
        nodes: list[Node] = []

        def add(node: Node, executor: MultiThreadedExecutor = executor, nodes: list[Node] = nodes) -> Node:
            nodes.append(node)
            executor.add_node(node)
            return node

        virtual = make_virtual_arm(load_robot("so101_follower"), tau_s=0.02)
        virtual.start()
        watch = GoalWatch(virtual)
        add(DriverNode(context=context, parameter_overrides=[Parameter("port", value=virtual.port),
                                                             Parameter("rate_hz", value=DRIVER_HZ)]))  # fmt: skip
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            if device == "joy":
                result["joy"] = summary(bench_joy(context, add, watch, args.trials), args.trials)
            elif device == "keyboard":
                result["keyboard_terminal"] = summary(bench_keyboard(context, add, watch, args.trials), args.trials)
            elif device == "phone":
                latencies, how = bench_phone(context, add, watch, args.trials)
                result["phone"] = {**summary(latencies, args.trials), "via": how}
        finally:
            executor.shutdown(timeout_sec=2.0)
            spinner.join(timeout=2.0)
            for node in reversed(nodes):
                node.close() if hasattr(node, "close") else None
                node.destroy_node()
            virtual.stop()
            rclpy.shutdown(context=context)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
