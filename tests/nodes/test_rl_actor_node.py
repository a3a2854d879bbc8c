"""The RL actor node on a real ROS 2 graph: the sim node plays the robot, a learner runs in-process.

Transitions reach the learner in order with their episodes (time limit, sim/reset between them),
interventions are the leader arm's actions with their flag, weights come back to the node, and a
learner expecting other features refuses the node at start.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("grpc")

import torch  # noqa: E402

from apprentice.resources import config_path  # noqa: E402
from apprentice.rl.learner import Learner, LearnerConfig  # noqa: E402
from apprentice.rl.stream_actor import contract_features  # noqa: E402
from apprentice.rl.transport.actor_client import LearnerRefused  # noqa: E402

LEADER = [0.1, -0.4, 2.0, 0.8, 0.2, 0.5]


class HoldPolicy:
    """action = state + W state, W fitted to the stored actions: a real update whose weights change."""

    def __init__(self) -> None:
        self.weight = torch.nn.Parameter(torch.zeros(6, 6))
        self.optimizer = torch.optim.SGD([self.weight], lr=0.01)

    def update(self, batch):
        state = batch["observation.state"].float()
        loss = ((state + state @ self.weight.T - batch["action"].float()) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def actor_state_dict(self):
        return {"weight": self.weight.detach().clone()}

    def load_actor_state_dict(self, sd) -> None:
        with torch.no_grad():
            self.weight.copy_(sd["weight"])

    def select_action(self, obs):
        state = torch.as_tensor(obs["observation.state"]).float()
        with torch.no_grad():
            return (state + self.weight @ state).numpy()

    def state_dict(self):
        return {"weight": self.weight.detach().clone()}

    def load_state_dict(self, sd) -> None:
        self.load_actor_state_dict(sd)


@pytest.fixture(scope="module")
def contract_file(tmp_path_factory) -> Path:
    """sim_reach without its camera: the sim runs headless, the test stays light."""
    data = yaml.safe_load(config_path("contracts", "sim_reach.yaml").read_text())
    data["observations"] = [o for o in data["observations"] if "images" not in o["key"]]
    path = tmp_path_factory.mktemp("contract") / "sim_reach_state.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def sim(ros_env):
    proc = subprocess.Popen([sys.executable, "-m", "apprentice.nodes.sim_node", "--ros-args", "-p", "render:=false"],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def make_node(contract_file: Path, port: int, features_ok: bool = True):
    from rclpy.parameter import Parameter

    from apprentice.nodes.rl_actor_node import RLActorNode

    overrides = [Parameter("contract", value=str(contract_file)), Parameter("learner_port", value=port),
                 Parameter("episode_time_s", value=0.5), Parameter("reset_time_s", value=0.1),
                 Parameter("terminate_on_success", value=False)]  # every episode runs to its time limit
    return RLActorNode(algorithm=HoldPolicy(), parameter_overrides=overrides)


def test_rl_actor_node_streams_episodes_interventions_and_gets_weights(sim, contract_file, tmp_path):
    from apprentice.contract import load_contract

    features = contract_features(load_contract(contract_file))
    learner = Learner(HoldPolicy(), LearnerConfig(output_dir=str(tmp_path / "learner"), port=0, batch_size=8,
                                                  online_step_before_learning=10,
                                                  policy_parameters_push_frequency=2, features=features))
    port = learner.start()
    stop = threading.Event()
    learning = threading.Thread(target=learner.run, args=(stop,), daemon=True)
    learning.start()
    rclpy.init()
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    node = make_node(contract_file, port)
    operator = rclpy.create_node("operator")
    flag = operator.create_publisher(Bool, "intervention", 10)
    leader = operator.create_publisher(JointState, "leader/joint_states", 10)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    executor.add_node(operator)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 60
        while node.actor.episodes < 1:  # the sim node takes a while to come up on a busy machine
            assert time.monotonic() < deadline, f"no episode finished: {node.last_reason}"
            time.sleep(0.05)
        # The operator takes over for a dozen ticks, then hands back.
        while node.actor.interventions_total < 12:
            assert time.monotonic() < deadline, f"interventions {node.actor.interventions_total}: {node.last_reason}"
            msg = JointState(name=list(load_contract(contract_file).action.names), position=LEADER)
            msg.header.stamp = node.get_clock().now().to_msg()
            leader.publish(msg)
            flag.publish(Bool(data=True))
            time.sleep(1 / 60)
        flag.publish(Bool(data=False))
        while node.actor.episodes < 4 or learner.step < 4:
            assert time.monotonic() < deadline, f"episodes {node.actor.episodes}, learner step {learner.step}"
            time.sleep(0.05)
        time.sleep(0.3)
        assert node.client.flush(5.0)
    finally:
        executor.shutdown()
        node.close()
        node.destroy_node()
        operator.destroy_node()
        rclpy.try_shutdown()
        stop.set()
        learning.join(5)
        learner.stop(checkpoint=False)
    learner.ingest(timeout=0.2)
    session = learner.service.sessions[node.client.session]
    assert session.duplicates == 0 and session.gaps == 0 and session.received == node.client._next_seq - 1
    replay = learner.replay
    assert replay.num_episodes >= 4
    lengths = np.bincount(replay.episode_index)[np.unique(replay.episode_index)] - 1
    assert np.all(lengths == 15)  # 0.5 s at 30 Hz, each one a whole episode
    flagged = replay.data["complementary_info.is_intervention"] & replay.has_action
    assert flagged.sum() == node.actor.interventions_total >= 12  # every intervention arrived, flagged
    np.testing.assert_allclose(replay.data["action"][flagged], np.tile(LEADER, (int(flagged.sum()), 1)), atol=1e-6)
    policy = ~replay.data["complementary_info.is_intervention"] & replay.has_action
    assert not np.allclose(replay.data["action"][policy][:5], LEADER)
    targets = {tuple(np.round(replay.data["observation.environment_state"][replay.episode_index == e][0], 4))
               for e in np.unique(replay.episode_index)}
    assert len(targets) >= 3  # sim/reset between episodes: a new target each time
    assert node.actor.parameter_updates >= 1


def test_rl_actor_node_refuses_a_learner_with_other_features(contract_file, tmp_path):
    from apprentice.contract import load_contract
    from apprentice.rl.transport.learner_service import LearnerService

    features = contract_features(load_contract(contract_file))
    features["observation.state"] = {"dtype": "float32", "shape": [7]}
    service = LearnerService(features, port=0)
    port = service.start()
    rclpy.init()
    try:
        with pytest.raises(LearnerRefused, match=r"observation\.state: the learner expects float32\(7,\), "
                                                 r"the actor sends float32\(6,\)"):
            make_node(contract_file, port)
    finally:
        rclpy.try_shutdown()
        service.stop(0)
    assert service.stats.refusals
