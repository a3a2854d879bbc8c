"""SmolVLA (Shukor et al. 2025, "SmolVLA: A vision-language-action model for affordable robotics"),
LeRobot-compatible: config.json fields, model.safetensors keys and processor files as LeRobot 0.6.1's."""

from apprentice.policies.smolvla.configuration_smolvla import SmolVLAConfig
from apprentice.policies.smolvla.modeling_smolvla import SmolVLAPolicy

POLICY = SmolVLAPolicy
__all__ = ["POLICY", "SmolVLAConfig", "SmolVLAPolicy"]
