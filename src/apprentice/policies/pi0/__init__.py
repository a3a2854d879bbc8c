"""π0: PaliGemma VLM + Gemma action expert, flow matching (lerobot 0.6.1's `pi0`)."""

from apprentice.policies.pi0.configuration_pi0 import PI0Config
from apprentice.policies.pi0.modeling_pi0 import PI0Policy

POLICY = PI0Policy

__all__ = ["POLICY", "PI0Config", "PI0Policy"]
