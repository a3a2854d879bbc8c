"""TD-MPC: Temporal Difference Learning for Model Predictive Control (TD-MPC1 + FOWM), LeRobot-compatible."""

from apprentice.policies.tdmpc.configuration_tdmpc import TDMPCConfig
from apprentice.policies.tdmpc.modeling_tdmpc import TDMPCPolicy

POLICY = TDMPCPolicy
__all__ = ["POLICY", "TDMPCConfig", "TDMPCPolicy"]
