"""Prefix/suffix attention masks of the π models (big_vision's `mask_ar` scheme, as openpi and lerobot use it).

Every token carries a pad flag (is it real?) and an `ar` flag: 1 starts a new attention block, 0 joins the
block of the token before it. A token attends to every real token whose running block count is at most its
own, so a run of zeros is bidirectional and each 1 is a causal step:

    π0:    [images + language: 0 … 0] [state: 1] [actions: 1 0 … 0]
    π0.5:  [images + language: 0 … 0] [actions: 1 0 … 0]

The prefix (images + language) attends only to itself, the state token (π0) to the prefix and itself, and
the action tokens to everything — so the prefix's keys/values do not depend on the suffix and can be cached.
"""

from __future__ import annotations

import torch
from torch import Tensor

# openpi's masked-logit value: finite (a row with nothing to attend to, a padding token's, stays NaN-free).
ATTENTION_MASK_VALUE = -2.3819763e38


def make_att_2d_masks(pad_masks: Tensor, att_masks: Tensor) -> Tensor:
    """bool (B, N, N): query i may attend to key j. `pad_masks` (B, N) bool, `att_masks` (B, N) 0/1 block starts."""
    if pad_masks.dim() != 2 or att_masks.dim() != 2:
        raise ValueError(f"masks must be (B, N); got pad {tuple(pad_masks.shape)}, att {tuple(att_masks.shape)}")
    blocks = torch.cumsum(att_masks.long(), dim=1)
    allowed = blocks[:, None, :] <= blocks[:, :, None]
    real = pad_masks[:, None, :] & pad_masks[:, :, None]
    return allowed & real


def attention_bias(mask_2d: Tensor, dtype: torch.dtype) -> Tensor:
    """bool (B, Q, K) -> additive (B, 1, Q, K) in `dtype`: 0 where allowed, ATTENTION_MASK_VALUE elsewhere."""
    zero = torch.zeros((), dtype=dtype, device=mask_2d.device)
    blocked = torch.full((), ATTENTION_MASK_VALUE, dtype=dtype, device=mask_2d.device)
    return torch.where(mask_2d[:, None], zero, blocked)


def suffix_mask_with_prefix(prefix_pad: Tensor, suffix_pad: Tensor, suffix_att: Tensor) -> Tensor:
    """bool (B, S, P + S): the suffix's queries over the cached prefix keys (all real ones) and its own keys."""
    batch, s_len = suffix_pad.shape
    over_prefix = prefix_pad[:, None, :].expand(batch, s_len, prefix_pad.shape[1])
    return torch.cat([over_prefix, make_att_2d_masks(suffix_pad, suffix_att)], dim=2)


def position_ids(pad_masks: Tensor, offset: Tensor | None = None) -> Tensor:
    """Rotary positions: the index among real tokens (padding repeats its neighbour's), after `offset` (B,)."""
    pos = torch.cumsum(pad_masks.long(), dim=1) - 1
    return pos if offset is None else pos + offset[:, None]
