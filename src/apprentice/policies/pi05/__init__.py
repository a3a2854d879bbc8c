"""π0.5: π0 with the state in the prompt and adaRMSNorm time conditioning (lerobot 0.6.1's `pi05`)."""

from apprentice.policies.pi05.configuration_pi05 import PI05Config
from apprentice.policies.pi05.modeling_pi05 import PI05Policy

POLICY = PI05Policy

__all__ = ["POLICY", "PI05Config", "PI05Policy"]
