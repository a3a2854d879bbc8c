"""π0-FAST: PaliGemma decoding FAST action tokens autoregressively (lerobot's `pi0_fast`)."""

from apprentice.policies.pi0fast.configuration_pi0fast import PI0FastConfig
from apprentice.policies.pi0fast.fast_tokenizer import FastTokenizer
from apprentice.policies.pi0fast.modeling_pi0fast import PI0FastPolicy

POLICY = PI0FastPolicy
__all__ = ["POLICY", "FastTokenizer", "PI0FastConfig", "PI0FastPolicy"]
