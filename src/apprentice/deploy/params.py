"""The policy node's parameters in one dataclass: defaults, meaning, and what they build.

The node declares one ROS parameter per field (same name, same default), so `ros2 param list`,
parameter files (config/infer.yaml, config/sim_demo.yaml) and `apprentice infer` all see this list.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from apprentice.deploy import DeployError
from apprentice.deploy.runtime import RuntimeConfig
from apprentice.deploy.safety import SafetyLimits
from apprentice.deploy.takeover import TakeoverConfig


def _param(default: object, help: str) -> Any:
    """A field whose comment is kept as data: the node's --help and ParameterDescriptor show it."""
    return field(default=default, metadata={"help": help})


@dataclass
class PolicyNodeParams:
    policy_path: str = _param("", "pretrained_model/ directory (ours or lerobot-train's)")
    contract: str = _param("sim_reach", "contract YAML path or a name in config/contracts/")
    device: str = _param("auto", "cpu | cuda | cuda:N | auto")
    task: str = _param("", "language instruction; '' = the contract's task")
    mode: str = _param("sync", "sync | async | ensemble | policy")
    fps: float = _param(0.0, "control rate; 0 = the contract's fps")
    n_action_steps: int = _param(0, "actions executed per chunk; 0 = the policy's")
    temporal_ensemble_coeff: float = _param(0.0, "mode=ensemble; 0 = the policy's (else 0.01)")
    lookahead: int = _param(-1, "mode=async: queued ticks that trigger the next inference; -1 = auto")
    task_topic: str = _param("task", "std_msgs/String: a new instruction for the next chunk ('' = back to `task`)")
    rtc_enabled: bool = _param(False, "mode=async: real-time chunking for flow-matching policies (smolvla)")
    rtc_execution_horizon: int = _param(10, "RTC: actions of the previous chunk that guide the next")
    rtc_max_guidance_weight: float = _param(10.0, "RTC: clip of the guidance weight")
    rtc_prefix_attention_schedule: str = _param("LINEAR", "RTC: prefix weights ZEROS | ONES | LINEAR | EXP")
    rtc_inference_delay: int = _param(-1, "RTC: committed actions per inference (ticks); -1 = measured")
    command_topic: str = _param("", "'' = the contract's")
    command_type: str = _param("", "full type name of Float64MultiArray or JointTrajectory; '' = the contract's")
    trajectory_time_from_start_s: float = _param(0.0, "JointTrajectory point time; 0 = one tick")
    robot: str = _param("", "robot definition for joint limits and max_relative_target")
    max_relative_step: float = _param(0.0, "radians per tick; 0 = the robot's (or off)")
    # A ROS double-array parameter needs a typed default, so [0.0] stands for "none".
    joint_lower_limits: list[float] = field(
        default_factory=lambda: [0.0], metadata={"help": "absolute lower limit per joint (radians); [0.0] = robot's"}
    )
    joint_upper_limits: list[float] = field(
        default_factory=lambda: [0.0], metadata={"help": "absolute upper limit per joint (radians); [0.0] = robot's"}
    )
    input_timeout_s: float = _param(0.5, "watchdog: inputs stale this long -> stop until re-enabled")
    action_timeout_s: float = _param(1.0, "watchdog: no action this long -> stop until re-enabled")
    enabled: bool = _param(False, "command from the start (else call ~/enable)")
    torch_threads: int = _param(0, "CPU threads for torch; 0 = half the cores, at most 4")
    diagnostics_period_s: float = _param(1.0, "period of the /diagnostics status")
    eval_episodes: int = _param(0, "> 0: run this many evaluation episodes, write eval_output, exit")
    eval_episode_time_s: float = _param(10.0, "evaluation: length of each episode")
    eval_settle_s: float = _param(0.3, "evaluation: wait after each reset, so no input from before it is still fresh")
    eval_end_on_success: bool = _param(False, "evaluation: end an episode at its first success")
    eval_reset_service: str = _param("sim/reset", "evaluation: std_srvs/Trigger that starts a new episode")
    eval_success_topic: str = _param("sim/is_success", "evaluation: std_msgs/Bool success topic")
    eval_output: str = _param("eval_info.json", "evaluation: where eval_info.json is written")
    eval_shutdown_when_done: bool = _param(True, "evaluation: exit once the episodes are done")
    follow_recorder: bool = _param(False, "drive only while the recorder records (hardware evaluation)")
    recorder_status_topic: str = _param("recorder/status", "with follow_recorder: the recorder's status topic")
    takeover_threshold: float = _param(
        0.0, "human takeover (DAgger): leader motion beyond this (rad, any joint) hands the arm to the operator; "
        "0 = only the ~/takeover service"
    )
    takeover_leader_topic: str = _param(
        "leader/joint_states", "takeover: the leader's sensor_msgs/JointState (radians, matched by name)"
    )
    intervention_topic: str = _param("intervention", "std_msgs/Bool every tick: true while a person drives")
    # Remote inference: the model runs in `apprentice policy-server` at this host:port (policy_path unused).
    server: str = _param("", "host:port of an `apprentice policy-server`; '' = load policy_path and run it here")
    server_token_file: str = _param("", "file holding the policy server's access token (first line)")
    server_token: str = _param("", "the token itself (prefer server_token_file: parameters are readable by anyone)")
    server_tls_ca: str = _param("", "PEM file to trust (the server's certificate or CA): connect over TLS")
    server_tls_name: str = _param("", "the name in the server's certificate when it is not the host in `server`")
    server_timeout_s: float = _param(1.0, "one chunk taking longer is a fault: the watchdog holds")
    server_connect_timeout_s: float = _param(10.0, "at start-up, wait this long for the policy server")
    server_image_codec: str = _param("jpeg", "images on the wire to the policy server: jpeg | png | raw")
    server_jpeg_quality: int = _param(90, "JPEG quality of images sent to the policy server")

    @classmethod
    def defaults(cls) -> dict[str, object]:
        """{name: default} for declaring the ROS parameters."""
        instance = cls()
        return {f.name: getattr(instance, f.name) for f in fields(cls)}

    def takeover_config(self, leader_max_age_s: float) -> TakeoverConfig:
        return TakeoverConfig(threshold_rad=self.takeover_threshold, max_age_s=leader_max_age_s)

    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(
            mode=self.mode,
            fps=self.fps or None,
            task=self.task or None,
            n_action_steps=self.n_action_steps or None,
            temporal_ensemble_coeff=self.temporal_ensemble_coeff if self.temporal_ensemble_coeff > 0 else None,
            lookahead=self.lookahead if self.lookahead >= 0 else None,
            rtc_enabled=self.rtc_enabled,
            rtc_execution_horizon=self.rtc_execution_horizon,
            rtc_max_guidance_weight=self.rtc_max_guidance_weight,
            rtc_prefix_attention_schedule=self.rtc_prefix_attention_schedule,
            rtc_inference_delay=self.rtc_inference_delay if self.rtc_inference_delay >= 0 else None,
            input_timeout_s=self.input_timeout_s,
            action_timeout_s=self.action_timeout_s,
        )

    def client_config(self) -> Any:
        """The remote policy client's settings (`server` must be set)."""
        from apprentice.deploy.remote import read_token
        from apprentice.deploy.remote.client import ClientConfig

        return ClientConfig(
            server=self.server,
            token=read_token(self.server_token, self.server_token_file, flag="server_token_file"),
            tls_ca=self.server_tls_ca,
            tls_server_name=self.server_tls_name,
            timeout_s=self.server_timeout_s,
            connect_timeout_s=self.server_connect_timeout_s,
            image_codec=self.server_image_codec,
            jpeg_quality=self.server_jpeg_quality,
        )

    def safety_limits(self, names: list[str]) -> SafetyLimits:
        """Limits from the robot definition (`robot`), overridden by the explicit parameters."""
        limits = SafetyLimits(names=names)
        if self.robot:
            from apprentice.robots import RobotError, load_robot

            try:
                robot = load_robot(self.robot)
            except RobotError as exc:
                raise DeployError(f"parameter robot={self.robot!r}: {exc}") from exc
            table = {j.name: (j.lower, j.upper) for j in robot.joints}
            step = robot.max_relative_target
            if isinstance(step, dict):
                step = [float(step.get(n, float("inf"))) for n in names]
            limits = SafetyLimits.from_joint_table(names, table, max_relative_step=step)
        lower = [] if list(self.joint_lower_limits) == [0.0] else list(self.joint_lower_limits)
        upper = [] if list(self.joint_upper_limits) == [0.0] else list(self.joint_upper_limits)
        return SafetyLimits(
            names=names,
            max_relative_step=self.max_relative_step or limits.max_relative_step,
            lower=lower or limits.lower,
            upper=upper or limits.upper,
        )
