"""sensor_msgs/Image fields <-> numpy, without ROS (cv_bridge's job, done exactly and testably).

The node layer copies the dict from `array_to_image_fields` into a message; readers pass the message's
fields to `image_to_array`. Both work on any object with the buffer protocol (bytes, array.array, numpy).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class ImageError(ValueError):
    """An image message or array does not match its encoding."""


# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("uint8", 3),
    "bgr8": ("uint8", 3),
    "rgba8": ("uint8", 4),
    "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1),
    "8UC1": ("uint8", 1),
    "8UC3": ("uint8", 3),
    "mono16": ("uint16", 1),
    "16UC1": ("uint16", 1),
    "32FC1": ("float32", 1),
}


def image_to_array(encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: int = 0) -> np.ndarray:
    """Message fields -> array (H, W) for one channel, (H, W, C) otherwise, in the message's channel order.

    Row padding (step > width * pixel size) is removed; the result is a copy, so it outlives the message.
    """
    if encoding not in ENCODINGS:
        raise ImageError(f"unsupported image encoding '{encoding}'; supported: {sorted(ENCODINGS)}")
    dtype_name, channels = ENCODINGS[encoding]
    dtype = np.dtype(dtype_name)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if is_bigendian else "<")
    height, width, step = int(height), int(width), int(step)
    row_bytes = width * channels * dtype.itemsize
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if step < row_bytes or buf.size < step * height:
        raise ImageError(
            f"{encoding} image {width}x{height}: step {step} and {buf.size} data bytes do not hold "
            f"{height} rows of {row_bytes} bytes"
        )
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    arr = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    if dtype.itemsize > 1:
        arr = arr.astype(np.dtype(dtype_name), copy=False)  # to native byte order (no-op when it already is)
    return arr[:, :, 0] if channels == 1 else arr


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """Array -> dict of Image fields (height, width, encoding, is_bigendian, step, data bytes)."""
    if encoding not in ENCODINGS:
        raise ImageError(f"unsupported image encoding '{encoding}'; supported: {sorted(ENCODINGS)}")
    dtype_name, channels = ENCODINGS[encoding]
    arr = np.asarray(array)
    if arr.dtype != np.dtype(dtype_name):
        raise ImageError(f"{encoding} needs dtype {dtype_name}, got {arr.dtype}")
    if arr.ndim == 2 and channels == 1:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ImageError(f"{encoding} needs shape (H, W{'' if channels == 1 else f', {channels}'}), got {arr.shape}")
    arr = np.ascontiguousarray(arr)
    height, width = arr.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big" and arr.dtype.itemsize > 1),
        "step": width * channels * arr.dtype.itemsize,
        "data": arr.tobytes(),
    }


def to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    """Array in `encoding` -> uint8 (H, W, 3) RGB, what dataset video features store."""
    if encoding in ("rgb8", "8UC3"):
        return array
    if encoding == "bgr8":
        return np.ascontiguousarray(array[:, :, ::-1])
    if encoding in ("rgba8", "bgra8"):
        rgb = array[:, :, :3]
        return np.ascontiguousarray(rgb if encoding == "rgba8" else rgb[:, :, ::-1])
    if encoding in ("mono8", "8UC1"):
        return np.repeat(array[:, :, None], 3, axis=2)
    raise ImageError(f"encoding '{encoding}' cannot be stored as an RGB video feature; publish rgb8/bgr8/mono8")


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: int = 0) -> np.ndarray:
    """Image message fields -> uint8 (H, W, 3) RGB."""
    return to_rgb(image_to_array(encoding, height, width, step, data, is_bigendian), encoding)


def compressed_to_rgb(fmt: str, data: Any) -> np.ndarray:
    """CompressedImage (jpeg/png) -> uint8 (H, W, 3) RGB, decoded with OpenCV."""
    try:
        import cv2
    except ImportError as exc:
        raise ImageError("decoding CompressedImage needs OpenCV: pip install opencv-python-headless") from exc
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"could not decode CompressedImage (format '{fmt}', {buf.size} bytes)")
    # image_transport writes "<orig>; jpeg compressed <enc>"; enc rgb8 means the encoder was handed RGB
    # bytes, so what OpenCV returns as 'BGR' is already RGB.
    return bgr if fmt.strip().endswith("compressed rgb8") else np.ascontiguousarray(bgr[:, :, ::-1])


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """uint8 RGB -> (CompressedImage.format, data) as image_transport's compressed plugin writes it."""
    import cv2

    ext = ".png" if fmt == "png" else ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise ImageError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return f"bgr8; {fmt} compressed bgr8", buf.tobytes()
