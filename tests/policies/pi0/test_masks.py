"""π attention masks on a toy sequence: prefix bidirectional, state causal, action block, padding excluded."""

from __future__ import annotations

import torch

from apprentice.policies.paligemma.masks import (
    ATTENTION_MASK_VALUE,
    attention_bias,
    make_att_2d_masks,
    position_ids,
    suffix_mask_with_prefix,
)

# prefix: 2 image tokens + 3 language tokens (the last is padding); suffix (π0): state + 3 actions.
PAD = torch.tensor([[1, 1, 1, 1, 0, 1, 1, 1, 1]], dtype=torch.bool)
ATT = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 0, 0]])
PREFIX, STATE, ACTIONS = [0, 1, 2, 3], 5, [6, 7, 8]


def test_prefix_is_bidirectional_and_never_sees_the_suffix():
    m = make_att_2d_masks(PAD, ATT)[0]
    for i in PREFIX:
        assert m[i, PREFIX].all()  # every real prefix token sees every real prefix token, later ones too
        assert not m[i, [STATE, *ACTIONS]].any()


def test_state_sees_prefix_and_itself_but_not_the_actions():
    m = make_att_2d_masks(PAD, ATT)[0]
    assert m[STATE, PREFIX].all() and m[STATE, STATE]
    assert not m[STATE, ACTIONS].any()


def test_actions_see_everything_real_and_each_other_both_ways():
    m = make_att_2d_masks(PAD, ATT)[0]
    for i in ACTIONS:
        assert m[i, [*PREFIX, STATE, *ACTIONS]].all()


def test_padding_is_neither_attended_nor_attending():
    m = make_att_2d_masks(PAD, ATT)[0]
    assert not m[:, 4].any() and not m[4].any()


def test_all_ones_is_causal():
    n = 5
    m = make_att_2d_masks(torch.ones(1, n, dtype=torch.bool), torch.ones(1, n))[0]
    assert torch.equal(m, torch.tril(torch.ones(n, n, dtype=torch.bool)))


def test_suffix_mask_over_cache_equals_the_full_masks_suffix_rows():
    full = make_att_2d_masks(PAD, ATT)[0]
    split = suffix_mask_with_prefix(PAD[:, :5], PAD[:, 5:], ATT[:, 5:])[0]
    assert torch.equal(split, full[5:])


def test_positions_skip_padding_and_continue_after_the_prefix():
    pos = position_ids(PAD)[0].tolist()
    assert pos == [0, 1, 2, 3, 3, 4, 5, 6, 7]
    suffix = position_ids(PAD[:, 5:], PAD[:, :5].long().sum(-1))[0].tolist()
    assert suffix == pos[5:]


def test_bias_is_zero_where_allowed_and_finite_negative_elsewhere():
    m = make_att_2d_masks(PAD, ATT)
    bias = attention_bias(m, torch.bfloat16)
    assert bias.shape == (1, 1, 9, 9) and bias.dtype == torch.bfloat16
    assert torch.equal(bias[0, 0] == 0, m[0])
    assert torch.isfinite(bias).all() and bias.min().item() < ATTENTION_MASK_VALUE / 2
