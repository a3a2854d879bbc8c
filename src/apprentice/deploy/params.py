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


@dataclass
class PolicyNodeParams:
    policy_path: str = ""  # pretrained_model/ directory (ours or lerobot-train's)
    contract: str = "sim_reach"  # contract YAML path or a name in config/contracts/
    device: str = "auto"  # cpu | cuda | cuda:N | auto
    task: str = ""  # language instruction; "" = the contract's task
    mode: str = "sync"  # sync | async | ensemble | policy
    fps: float = 0.0  # control rate; 0 = the contract's fps
    n_action_steps: int = 0  # 0 = the policy's
    temporal_ensemble_coeff: float = 0.0  # mode=ensemble; 0 = the policy's (else 0.01)
    lookahead: int = -1  # mode=async: queued ticks that trigger the next inference; -1 = auto
    command_topic: str = ""  # "" = the contract's
    command_type: str = ""  # std_msgs/msg/Float64MultiArray | trajectory_msgs/msg/JointTrajectory
    trajectory_time_from_start_s: float = 0.0  # JointTrajectory point time; 0 = one tick
    robot: str = ""  # robot definition for joint limits and max_relative_target
    max_relative_step: float = 0.0  # radians per tick; 0 = the robot's (or off)
    # A ROS double-array parameter needs a typed default, so [0.0] stands for "none".
    joint_lower_limits: list[float] = field(default_factory=lambda: [0.0])
    joint_upper_limits: list[float] = field(default_factory=lambda: [0.0])
    input_timeout_s: float = 0.5  # watchdog: inputs stale this long -> stop until re-enabled
    action_timeout_s: float = 1.0  # watchdog: no action this long -> stop until re-enabled
    enabled: bool = False  # command from the start (else call ~/enable)
    torch_threads: int = 0  # 0 = half the cores, at most 4
    diagnostics_period_s: float = 1.0
    eval_episodes: int = 0  # > 0: run this many evaluation episodes, write eval_output, exit
    eval_episode_time_s: float = 10.0
    eval_settle_s: float = 0.3  # after each reset, so no input from before it is still fresh
    eval_end_on_success: bool = False
    eval_reset_service: str = "sim/reset"  # std_srvs/Trigger
    eval_success_topic: str = "sim/is_success"  # std_msgs/Bool
    eval_output: str = "eval_info.json"
    eval_shutdown_when_done: bool = True
    follow_recorder: bool = False  # drive only while the recorder records (hardware evaluation)
    recorder_status_topic: str = "recorder/status"
    # Remote inference: the model runs in `apprentice policy-server` at this host:port (policy_path unused).
    server: str = ""  # "" = load policy_path and run it here
    server_token_file: str = ""  # file holding the server's access token (first line)
    server_token: str = ""  # the token itself (prefer server_token_file: parameters are readable by anyone)
    server_tls_ca: str = ""  # PEM file to trust (the server's certificate or CA): connect over TLS
    server_tls_name: str = ""  # the name in the server's certificate when it is not the host in `server`
    server_timeout_s: float = 1.0  # one chunk taking longer is a fault: the watchdog holds
    server_connect_timeout_s: float = 10.0  # at start-up, wait this long for the server
    server_image_codec: str = "jpeg"  # jpeg | png | raw
    server_jpeg_quality: int = 90

    @classmethod
    def defaults(cls) -> dict[str, object]:
        """{name: default} for declaring the ROS parameters."""
        instance = cls()
        return {f.name: getattr(instance, f.name) for f in fields(cls)}

    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(
            mode=self.mode,
            fps=self.fps or None,
            task=self.task or None,
            n_action_steps=self.n_action_steps or None,
            temporal_ensemble_coeff=self.temporal_ensemble_coeff if self.temporal_ensemble_coeff > 0 else None,
            lookahead=self.lookahead if self.lookahead >= 0 else None,
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
