"""VQ-BeT (Lee et al. 2024, "Behavior Generation with Latent Actions"), LeRobot-compatible."""

from apprentice.policies.vqbet.configuration_vqbet import VQBeTConfig
from apprentice.policies.vqbet.modeling_vqbet import VQBeTPolicy

POLICY = VQBeTPolicy
__all__ = ["POLICY", "VQBeTConfig", "VQBeTPolicy"]
