"""The one image resize between a camera's frames and a policy trained at a smaller `input_features` size.

Training resizes each frame once into the frame cache (and per sample on the streaming path); the policy
node, the remote policy server and anything else that feeds a policy call the same function with the
checkpoint's config, so a policy never sees frames resized differently from the ones it learned on. It
always runs on the CPU and returns uint8: the same bytes at training and at inference, whatever device
the model is on.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from apprentice.policies.config import PolicyError


def resize_frames(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 (..., C, H, W) -> uint8 (..., C, h, w): bilinear with antialiasing (area-like when shrinking),
    rounded back to uint8. A frame already of `size` is returned as it is."""
    if frames.dtype != torch.uint8:
        raise PolicyError(f"resize_frames needs uint8 frames, got {frames.dtype}")
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:]).cpu().float()
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).reshape(*lead, frames.shape[-3], *size)


def to_uint8(images: Tensor) -> Tensor:
    """Float images in [0, 1] (frames / 255) back to the uint8 they came from (exact for such frames)."""
    return images if images.dtype == torch.uint8 else images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def policy_image_size(config: Any, key: str) -> tuple[int, int] | None:
    """(H, W) the policy was trained at for camera `key` (its input_features), None when not an image input."""
    feature = (getattr(config, "input_features", None) or {}).get(key)
    if feature is None or getattr(feature, "type", None) != "VISUAL" or len(feature.shape) != 3:
        return None
    return int(feature.shape[1]), int(feature.shape[2])


def fit_image(image: Tensor, config: Any, key: str) -> Tensor:
    """One camera frame as the policy takes it: (C, H, W) float in [0, 1] at the policy's trained size.
    `image` is an (H, W, C) uint8 frame from a camera/topic, or already (C, H, W) float in [0, 1]."""
    size = policy_image_size(config, key)
    if image.dtype == torch.uint8:
        chw = image.permute(2, 0, 1) if image.dim() == 3 else image
    elif size is None or tuple(image.shape[-2:]) == size:
        return image.float()
    else:
        chw = to_uint8(image)  # resized through uint8, exactly as the training cache did
    if size is not None and tuple(chw.shape[-2:]) != size:
        chw = resize_frames(chw.contiguous(), size)
    return chw.float().div_(255.0)


def resize_problem(key: str, given: tuple[int, ...], trained: tuple[int, ...]) -> str | None:
    """Why frames of (C, H, W) `given` cannot feed a policy trained at (C, H, W) `trained` (None: they can).
    A size that differs is resized; a channel count or aspect ratio (beyond 2%) that differs is another
    camera, and resizing would hide that."""
    if tuple(given) == tuple(trained):
        return None
    if len(given) != 3 or len(trained) != 3 or given[0] != trained[0]:
        return f"{key}: the checkpoint expects {tuple(trained)}, the contract gives {tuple(given)}"
    if abs(given[2] / given[1] - trained[2] / trained[1]) > 0.02 * trained[2] / trained[1]:
        return (f"{key}: the checkpoint expects {tuple(trained)}, the contract gives {tuple(given)} "
                "(another aspect ratio: frames are resized only to the same shape's size)")
    return None
