"""`"type": "gaussian_actor"` — lerobot 0.6's name for SAC's policy half; the same SACPolicy loads it."""

from apprentice.policies.sac import SACConfig, SACPolicy

POLICY = SACPolicy
__all__ = ["POLICY", "SACConfig", "SACPolicy"]
