"""ACT: Action Chunking with Transformers (Zhao et al. 2023), LeRobot-compatible."""

from apprentice.policies.act.configuration_act import ACTConfig
from apprentice.policies.act.modeling_act import ACTPolicy

POLICY = ACTPolicy
__all__ = ["POLICY", "ACTConfig", "ACTPolicy"]
