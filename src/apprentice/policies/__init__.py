"""Policies in plain torch, LeRobot-compatible: one sub-package per `type` (act/, diffusion/, …).

Adding a policy = adding a folder whose __init__ exports `POLICY` (a `Policy` subclass whose
`config_class` is its config dataclass); `make_policy`/`load_policy` find it by folder name.
"""

from apprentice.policies.base import Policy
from apprentice.policies.config import PolicyConfig, PolicyError, PolicyFeature, features_from_dataset
from apprentice.policies.normalize import IMAGENET_STATS, Normalizer, stats_to_tensors
from apprentice.policies.pretrained import (
    available_policies,
    load_policy,
    load_stats,
    make_config,
    make_policy,
    policy_class,
    save_policy,
)

__all__ = [
    "IMAGENET_STATS",
    "Normalizer",
    "Policy",
    "PolicyConfig",
    "PolicyError",
    "PolicyFeature",
    "available_policies",
    "features_from_dataset",
    "load_policy",
    "load_stats",
    "make_config",
    "make_policy",
    "policy_class",
    "save_policy",
    "stats_to_tensors",
]
