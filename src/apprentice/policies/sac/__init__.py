"""SAC (Soft Actor-Critic, as lerobot's SACPolicy / 0.6 gaussian_actor + SACAlgorithm): the policy of HIL-SERL."""

from apprentice.policies.sac.algorithm import SACAlgorithm
from apprentice.policies.sac.configuration_sac import SACConfig
from apprentice.policies.sac.modeling_sac import SACPolicy

POLICY = SACPolicy
__all__ = ["POLICY", "SACAlgorithm", "SACConfig", "SACPolicy"]
