"""Policy inference runtime (no ROS): observation assembly, action chunk scheduling, safety, watchdog.

The policy node (`apprentice.nodes.policy_node`) wires topics and timers to `PolicyRuntime`; everything
here runs and is tested without rclpy.
"""

from __future__ import annotations


class DeployError(RuntimeError):
    """A deployment problem: policy and contract disagree, bad safety limits, a stalled loop."""


from apprentice.deploy.chunking import ActionScheduler  # noqa: E402
from apprentice.deploy.evaluation import EpisodeResult, EvalBook  # noqa: E402
from apprentice.deploy.safety import SafetyFilter, SafetyLimits  # noqa: E402
from apprentice.deploy.stats import LatencyStats, LoopTimer  # noqa: E402
from apprentice.deploy.watchdog import Watchdog  # noqa: E402

__all__ = [
    "ActionScheduler",
    "DeployError",
    "EpisodeResult",
    "EvalBook",
    "LatencyStats",
    "LoopTimer",
    "SafetyFilter",
    "SafetyLimits",
    "Watchdog",
]
