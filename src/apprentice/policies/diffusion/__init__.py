"""Diffusion Policy (Chi et al. 2023), LeRobot-compatible."""

from apprentice.policies.diffusion.configuration_diffusion import DiffusionConfig
from apprentice.policies.diffusion.modeling_diffusion import DiffusionPolicy

POLICY = DiffusionPolicy
__all__ = ["POLICY", "DiffusionConfig", "DiffusionPolicy"]
