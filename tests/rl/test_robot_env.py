"""`RobotEnv` on the simulated SO-101-like arm (`reach`): bounds, IK deltas, crop/resize, reset, time limit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")

from apprentice.rl.robot_env import RobotEnv, RobotEnvConfig, RobotEnvError, preprocess_image
from apprentice.rl.sim_robot import MujocoArm, MujocoKinematics
from apprentice.sim.reach import JOINT_NAMES, ReachEnv

RESET = [0.0, -0.5, 2.3, 0.9, 0.0, 0.3]


def make_env(render: bool = False, intervention=None, **config) -> tuple[RobotEnv, MujocoArm, MujocoKinematics]:
    task = ReachEnv(seed=0, render=render)
    task.reset(seed=0)
    arm = MujocoArm(task)
    kinematics = MujocoKinematics(task.model, "tip", JOINT_NAMES, JOINT_NAMES[:5])
    defaults = dict(fixed_reset_joint_positions=RESET, reset_time_s=1.0)
    return RobotEnv(arm, RobotEnvConfig(**{**defaults, **config}), kinematics, intervention), arm, kinematics


def test_end_effector_deltas_move_the_tip_and_stop_at_the_workspace_bounds():
    env, arm, kin = make_env()
    env.reset()
    start = kin.fk(arm.read_joints())
    for _ in range(3):
        env.step(np.array([0.0, 0.0, 1.0, 1.0]))
    moved = kin.fk(arm.read_joints()) - start
    assert 0.03 < moved[2] < 0.09 and abs(moved[0]) < 0.02  # ~2.5 cm per step up, not sideways

    bounds = {"min": (start - 0.02).tolist(), "max": (start + np.array([0.03, 0.02, 0.02])).tolist()}
    env, arm, kin = make_env(end_effector_bounds=bounds)
    env.reset()
    for _ in range(12):
        env.step(np.array([1.0, 0.0, 0.0, 1.0]))
    tip = kin.fk(arm.read_joints())
    assert tip[0] == pytest.approx(bounds["max"][0], abs=0.006)  # pushed +x for 30 cm, held at the bound
    assert np.all(tip >= np.array(bounds["min"]) - 0.006) and np.all(tip <= np.array(bounds["max"]) + 0.006)


def test_joint_mode_clips_to_the_joint_bounds_and_gripper_commands_step_the_gripper():
    low, high = [-0.5] * 6, [0.5] * 6
    env, arm, _ = make_env(control_mode="joint", joint_bounds={"min": low, "max": high},
                           fixed_reset_joint_positions=[0.0] * 6)
    env.reset()
    np.testing.assert_allclose(env.joint_targets(np.array([2.0, -2.0, 0.1, 0.0, 0.0, 0.0])),
                               [0.5, -0.5, 0.1, 0.0, 0.0, 0.0])
    with pytest.raises(RobotEnvError, match="action must be 6 finite values"):
        env.step(np.zeros(4))

    env, arm, _ = make_env()
    env.reset()
    g = JOINT_NAMES.index("gripper")
    q = arm.read_joints()
    assert env.joint_targets(np.array([0, 0, 0, 0.0]))[g] == pytest.approx(q[g] + 0.1)  # open
    assert env.joint_targets(np.array([0, 0, 0, 1.0]))[g] == pytest.approx(q[g])  # stay
    assert env.joint_targets(np.array([0, 0, 0, 2.0]))[g] == pytest.approx(q[g] - 0.1)  # close


def test_images_are_cropped_then_resized():
    crop = [10, 20, 60, 80]
    env, arm, _ = make_env(render=True, crop_params_dict={"observation.images.top": crop}, resize_size=[32, 40])
    obs, _ = env.reset()
    assert obs["observation.images.top"].shape == (32, 40, 3) and obs["observation.images.top"].dtype == np.uint8
    raw = arm.read_images()["top"]
    np.testing.assert_array_equal(obs["observation.images.top"], preprocess_image(raw, crop, [32, 40]))
    # the crop is the region asked for: resizing the whole frame gives another image
    assert not np.array_equal(preprocess_image(raw, None, [32, 40]), obs["observation.images.top"])
    np.testing.assert_array_equal(preprocess_image(raw, crop, None), raw[10:70, 20:100])
    with pytest.raises(RobotEnvError, match="starts outside"):
        preprocess_image(raw, [500, 0, 10, 10], None)


def test_reset_goes_to_the_reset_pose_and_episodes_end_at_the_time_limit():
    env, arm, _ = make_env(fps=10, control_time_s=0.5)
    arm.send_joints(np.zeros(6))
    arm.wait(1.0)
    env.reset()
    np.testing.assert_allclose(arm.read_joints(), RESET, atol=0.05)
    truncations = [env.step(np.array([0.0, 0.0, 0.0, 1.0]))[3] for _ in range(5)]
    assert truncations == [False, False, False, False, True]
    env.reset()
    assert env.step(np.array([0.0, 0.0, 0.0, 1.0]))[3] is False  # the count restarts with the episode


def test_an_intervention_replaces_the_action_and_is_flagged():
    class Operator:
        def reset(self):
            self.calls = 0

        def intervene(self, obs, policy_action):
            self.calls += 1
            return np.array([0.0, 0.0, -1.0, 1.0]) if self.calls == 2 else None

    env, arm, kin = make_env(intervention=Operator())
    env.reset()
    first = env.step(np.array([0.0, 0.0, 1.0, 1.0]))[4]
    z = kin.fk(arm.read_joints())[2]
    second = env.step(np.array([0.0, 0.0, 1.0, 1.0]))[4]
    assert first["is_intervention"] is False and "action_intervention" not in first
    assert second["is_intervention"] is True
    np.testing.assert_array_equal(second["action_intervention"], [0.0, 0.0, -1.0, 1.0])
    assert kin.fk(arm.read_joints())[2] < z - 0.01  # the operator's "down" ran, not the policy's "up"


def test_config_file_and_its_errors(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("fps: 15\ncontrol_mode: joint\nresize_size: [64, 64]\n")
    config = RobotEnvConfig.from_file(path)
    assert (config.fps, config.control_mode, config.max_episode_steps) == (15, "joint", 300)
    path.write_text("fps: 15\nreset_pos: [0]\n")
    with pytest.raises(RobotEnvError, match=r"unknown field\(s\) \['reset_pos'\]"):
        RobotEnvConfig.from_file(path)
    with pytest.raises(RobotEnvError, match="control_mode 'cartesian'"):
        RobotEnvConfig(control_mode="cartesian")
    with pytest.raises(RobotEnvError, match="crop_params_dict"):
        RobotEnvConfig(crop_params_dict={"observation.images.top": [0, 0, 0, 10]})
    with pytest.raises(RobotEnvError, match=r"min .* exceeds max"):
        RobotEnvConfig(end_effector_bounds={"min": [0, 0, 1], "max": [1, 1, 0]})
    task = ReachEnv(seed=0, render=False)
    with pytest.raises(RobotEnvError, match="needs the arm's kinematics"):
        RobotEnv(MujocoArm(task), RobotEnvConfig())


def test_the_shipped_example_configs_load():
    from apprentice.resources import config_path
    from apprentice.rl.run_config import load_run_config

    env_config = RobotEnvConfig.from_file(config_path("rl", "so101_robot_env.yaml"))
    assert env_config.max_episode_steps == 200 and env_config.resize_size == [128, 128]
    run = load_run_config(config_path("rl", "hilserl_gym_hil.yaml"), ["--learner.port=50099"])
    assert run.algorithm["type"] == "sac" and run.learner["port"] == 50099
    assert run.actor_config().online_steps == 100_000 and run.client_config().learner_port == 50051
