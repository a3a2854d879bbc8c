"""Camera frames as PaliGemma's SigLIP takes them: resized without distortion (centred black padding,
openpi's `resize_with_pad`) to the configured square resolution, then scaled from [0, 1] to [-1, 1]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resize_with_pad(images: Tensor, height: int, width: int) -> Tensor:
    """(B, C, h, w) float in [0, 1] -> (B, C, height, width): scaled to fit, centred, padded with 0."""
    cur_h, cur_w = images.shape[-2:]
    if (cur_h, cur_w) == (height, width):
        return images
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return F.pad(resized, (left, width - new_w - left, top, height - new_h - top), value=0.0)


def siglip_pixels(images: Tensor, resolution: tuple[int, int]) -> Tensor:
    """(B, C, H, W) in [0, 1] -> (B, C, *resolution) float32 in [-1, 1]."""
    return resize_with_pad(images.float(), *resolution) * 2.0 - 1.0
