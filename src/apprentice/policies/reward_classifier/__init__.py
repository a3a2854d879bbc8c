"""Reward classifier (lerobot's `reward_classifier`): success from camera frames, HIL-SERL's learned reward."""

from apprentice.policies.reward_classifier.configuration_classifier import RewardClassifierConfig
from apprentice.policies.reward_classifier.modeling_classifier import Classifier

POLICY = Classifier
__all__ = ["POLICY", "Classifier", "RewardClassifierConfig"]
