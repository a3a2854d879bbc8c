"""PaliGemma + Gemma action expert with π0's joint attention, shared by the pi0 and pi05 policies.

Not a policy type itself (no POLICY export): `available_policies()` lists only packages that are.
"""

from apprentice.policies.paligemma.masks import make_att_2d_masks, position_ids, suffix_mask_with_prefix
from apprentice.policies.paligemma.model import PaliGemmaWithExpert, PrefixCache
from apprentice.policies.paligemma.norm import AdaRMSNorm
from apprentice.policies.paligemma.variants import VARIANTS, GemmaVariant, VisionVariant, register_variant

__all__ = [
    "VARIANTS",
    "AdaRMSNorm",
    "GemmaVariant",
    "PaliGemmaWithExpert",
    "PrefixCache",
    "VisionVariant",
    "make_att_2d_masks",
    "position_ids",
    "register_variant",
    "suffix_mask_with_prefix",
]
