"""policies/image_resize.py: the one resize between camera frames and a policy's trained input size."""

from __future__ import annotations

import pytest
import torch

from apprentice.policies import PolicyError, PolicyFeature
from apprentice.policies.image_resize import fit_image, resize_frames, resize_problem, to_uint8


class _Config:
    def __init__(self) -> None:
        self.input_features = {"observation.images.top": PolicyFeature("VISUAL", (3, 2, 4)),
                               "observation.state": PolicyFeature("STATE", (6,))}


def test_shrinking_keeps_levels_and_uint8():
    flat = torch.full((1, 3, 48, 64), 77, dtype=torch.uint8)
    out = resize_frames(flat, (24, 32))
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 24, 32) and bool((out == 77).all())
    edge = torch.zeros((2, 3, 48, 64), dtype=torch.uint8)
    edge[..., 32:] = 200  # dark left half, bright right half; a leading batch dim is kept
    out = resize_frames(edge, (24, 32))
    assert out.shape == (2, 3, 24, 32)
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 0, -1] == 200 and 0 < out[0, 0, 0, 16] < 200  # antialiased edge
    assert resize_frames(flat, (48, 64)) is flat  # already that size: untouched
    with pytest.raises(PolicyError, match="uint8"):
        resize_frames(flat.float(), (2, 2))


def test_to_uint8_inverts_division_by_255_exactly():
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(levels.float() / 255.0), levels)


def test_fit_image_resizes_a_camera_frame_to_the_trained_size():
    frame = torch.randint(0, 256, (4, 8, 3), dtype=torch.uint8)  # (H, W, C) from a topic
    out = fit_image(frame, _Config(), "observation.images.top")
    assert out.shape == (3, 2, 4) and out.dtype == torch.float32
    assert torch.equal(out, resize_frames(frame.permute(2, 0, 1).contiguous(), (2, 4)).float() / 255.0)
    # A float (C, H, W) frame in [0, 1] takes the same path through uint8.
    assert torch.equal(fit_image(frame.permute(2, 0, 1).float() / 255.0, _Config(), "observation.images.top"), out)
    same = torch.randint(0, 256, (2, 4, 3), dtype=torch.uint8)
    assert torch.equal(fit_image(same, _Config(), "observation.images.top"), same.permute(2, 0, 1).float() / 255)


def test_resize_problem_allows_another_size_not_another_camera():
    assert resize_problem("k", (3, 480, 640), (3, 240, 320)) is None
    assert "another aspect ratio" in resize_problem("k", (3, 480, 480), (3, 240, 320))
    assert "expects (3, 240, 320), the contract gives (1, 480, 640)" in resize_problem("k", (1, 480, 640),
                                                                                       (3, 240, 320))
