"""Policy node parameters: what they build (runtime config, safety limits) and `apprentice infer` flags."""

from __future__ import annotations

import math

import pytest

from apprentice.deploy import DeployError
from apprentice.deploy.params import PolicyNodeParams

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def test_defaults_mean_the_policy_and_contract_decide() -> None:
    cfg = PolicyNodeParams().runtime_config()
    assert cfg.mode == "sync" and cfg.fps is None and cfg.n_action_steps is None
    assert cfg.lookahead is None and cfg.temporal_ensemble_coeff is None and cfg.task is None
    limits = PolicyNodeParams().safety_limits(NAMES)
    assert limits.max_relative_step is None and limits.lower is None and limits.upper is None


def test_robot_definition_limits_and_explicit_overrides() -> None:
    limits = PolicyNodeParams(robot="so101_follower").safety_limits(NAMES)
    assert limits.names == NAMES and len(limits.lower) == 6
    assert all(math.isinf(v) for v in limits.lower)  # the shipped SO-101 file sets no extra limits
    explicit = PolicyNodeParams(
        robot="so101_follower", max_relative_step=0.1, joint_lower_limits=[-1.0] * 6, joint_upper_limits=[1.0] * 6
    ).safety_limits(NAMES)
    assert explicit.max_relative_step == 0.1 and explicit.lower == [-1.0] * 6 and explicit.upper == [1.0] * 6


def test_unknown_robot_is_a_clear_error() -> None:
    with pytest.raises(DeployError, match="parameter robot='no_such_arm'"):
        PolicyNodeParams(robot="no_such_arm").safety_limits(NAMES)


def test_wrong_number_of_joint_limits_names_the_joints() -> None:
    with pytest.raises(DeployError, match="2 values but the action has 6 joints"):
        PolicyNodeParams(joint_lower_limits=[-1.0, -1.0]).safety_limits(NAMES)


def test_infer_flags_become_node_parameters(tmp_path) -> None:
    from apprentice.nodes.infer_cli import ros_args as _ros_args

    (tmp_path / "config.json").write_text("{}")  # --policy.path must name a pretrained_model/ directory

    flags = [f"--policy.path={tmp_path}", "--task=pick: the red cube", "--enable", "--ros-args", "-p", "fps:=15.0"]
    args = _ros_args(flags)
    assert args[0] == "--ros-args"
    pairs = dict(args[i + 1].split(":=", 1) for i in range(1, len(args) - 1) if args[i] == "-p")
    assert pairs["policy_path"] == f'"{tmp_path}"' and pairs["enabled"] == "true"
    assert pairs["task"] == '"pick: the red cube"'  # JSON-quoted: a colon must not make it a YAML map
    assert pairs["fps"] == "15.0"  # passed-through ROS arguments come last and win
    assert "command_topic" not in pairs  # empty strings keep the node's default
    assert set(pairs) - {"fps"} <= set(PolicyNodeParams.defaults())


def test_params_file_settings_are_not_overridden_by_flag_defaults(tmp_path) -> None:
    """`apprentice infer --params-file config/infer.yaml`: only flags typed on the command line override it."""
    from apprentice.nodes.infer_cli import ros_args as _ros_args

    args = _ros_args(["--params-file", "config/infer.yaml", "--mode=async"])
    pairs = dict(args[i + 1].split(":=", 1) for i in range(1, len(args) - 1) if args[i] == "-p")
    assert args[:3] == ["--ros-args", "--params-file", "config/infer.yaml"]
    assert pairs == {"mode": '"async"'}  # no contract/device/max_relative_step/enabled defaults slipped in
    with pytest.raises(SystemExit):
        _ros_args(["--mode=async"])  # neither a checkpoint nor a params file
