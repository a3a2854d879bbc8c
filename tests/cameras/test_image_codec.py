"""Exact Image <-> numpy conversion for rgb8/bgr8/mono8/16UC1 (what cv_bridge does), without ROS."""

from __future__ import annotations

import numpy as np
import pytest

from apprentice.cameras.image import (
    ImageError,
    array_to_image_fields,
    compressed_to_rgb,
    image_to_array,
    image_to_rgb,
    rgb_to_compressed,
    to_rgb,
)

rng = np.random.default_rng(0)
CASES = {
    "rgb8": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "bgr8": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "mono8": rng.integers(0, 256, (5, 7), dtype=np.uint8),
    "16UC1": rng.integers(0, 65536, (5, 7), dtype=np.uint16),
}


@pytest.mark.parametrize("encoding", sorted(CASES))
def test_roundtrip_exact(encoding: str) -> None:
    arr = CASES[encoding]
    f = array_to_image_fields(arr, encoding)
    assert (f["height"], f["width"], f["encoding"]) == (5, 7, encoding)
    assert f["step"] == arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    back = image_to_array(f["encoding"], f["height"], f["width"], f["step"], f["data"], f["is_bigendian"])
    assert back.dtype == arr.dtype
    np.testing.assert_array_equal(back, arr)


def test_row_padding_is_removed() -> None:
    arr = CASES["rgb8"]
    padded = np.zeros((5, 7 * 3 + 11), np.uint8)
    padded[:, :21] = arr.reshape(5, 21)
    np.testing.assert_array_equal(image_to_array("rgb8", 5, 7, 32, padded.tobytes()), arr)


def test_big_endian_16uc1() -> None:
    depth = CASES["16UC1"]
    back = image_to_array("16UC1", 5, 7, 14, depth.astype(">u2").tobytes(), is_bigendian=1)
    np.testing.assert_array_equal(back, depth)
    assert back.dtype.isnative


def test_to_rgb_conversions() -> None:
    bgr = CASES["bgr8"]
    np.testing.assert_array_equal(to_rgb(bgr, "bgr8"), bgr[:, :, ::-1])
    mono = CASES["mono8"]
    rgb = image_to_rgb("mono8", 5, 7, 7, mono.tobytes())
    assert rgb.shape == (5, 7, 3) and all((rgb[:, :, c] == mono).all() for c in range(3))
    with pytest.raises(ImageError, match="16UC1"):
        to_rgb(CASES["16UC1"], "16UC1")


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ImageError, match="yuv422"):
        image_to_array("yuv422", 1, 1, 2, b"\0\0")
    with pytest.raises(ImageError, match="do not hold"):
        image_to_array("rgb8", 5, 7, 21, bytes(20))
    with pytest.raises(ImageError, match="dtype uint8"):
        array_to_image_fields(CASES["16UC1"], "mono8")


def test_compressed_roundtrip() -> None:
    # smooth image so JPEG error stays small; PNG is lossless
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.stack([x * 4, y * 5, (x + y) * 2], axis=2).astype(np.uint8)
    fmt, data = rgb_to_compressed(rgb, "png")
    np.testing.assert_array_equal(compressed_to_rgb(fmt, data), rgb)
    fmt, data = rgb_to_compressed(rgb, "jpeg", quality=95)
    assert np.abs(compressed_to_rgb(fmt, data).astype(int) - rgb).mean() < 3
    with pytest.raises(ImageError, match="could not decode"):
        compressed_to_rgb("jpeg", b"not a jpeg")
