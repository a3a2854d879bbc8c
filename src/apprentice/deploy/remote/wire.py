"""The bytes of one remote-inference message: a JSON header and the arrays it describes.

    frame  := MAGIC (4 bytes, b"APR1") | header_len (uint32, big-endian) | header (UTF-8 JSON) | payload
    header := {..., "arrays": [{"key", "dtype", "shape", "codec", "nbytes"}, ...]}
    payload = the arrays' bytes, back to back, in header order

``codec`` is ``raw`` (C-order bytes of ``dtype``), ``jpeg`` or ``png`` (a uint8 HxWx3 RGB or HxW
image, compressed with OpenCV's libjpeg-turbo/libpng). The frame is self-describing and holds no
pickled object: a server can be written in any language from this docstring, and a malformed
frame is a `DeployError` naming what is wrong, never code executed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from apprentice.deploy import DeployError

MAGIC = b"APR1"
CODECS = ("raw", "jpeg", "png")
_DTYPES = ("uint8", "float32", "float64", "int64")
_LEN = struct.Struct(">I")


def encode_frame(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None,
                 codecs: Mapping[str, str] | None = None, jpeg_quality: int = 90) -> bytes:
    """One frame: ``header`` plus ``arrays`` (each sent with ``codecs[key]``, default raw)."""
    codecs = codecs or {}
    described, blobs = [], []
    for key, value in (arrays or {}).items():
        array = np.ascontiguousarray(value)
        if array.dtype.name not in _DTYPES:
            raise DeployError(f"array {key!r} has dtype {array.dtype}; the wire carries {', '.join(_DTYPES)}")
        codec = codecs.get(key, "raw")
        if codec != "raw" and not is_image(array):
            codec = "raw"  # only uint8 images compress; a state vector travels as it is
        blob = _compress(array, codec, jpeg_quality) if codec != "raw" else array.tobytes()
        described.append({"key": key, "dtype": array.dtype.name, "shape": list(array.shape), "codec": codec,
                          "nbytes": len(blob)})
        blobs.append(blob)
    head = json.dumps({**header, "arrays": described}, separators=(",", ":")).encode()
    return b"".join([MAGIC, _LEN.pack(len(head)), head, *blobs])


def decode_frame(frame: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of a frame written by `encode_frame`; a malformed frame raises DeployError."""
    view = memoryview(frame)
    if len(view) < 8 or bytes(view[:4]) != MAGIC:
        raise DeployError(
            f"not an apprentice remote-inference frame (starts {bytes(view[:4])!r}, expected {MAGIC!r}); "
            "is the other end an apprentice policy server/client of the same version?"
        )
    (head_len,) = _LEN.unpack(view[4:8])
    if 8 + head_len > len(view):
        raise DeployError(f"truncated frame: header of {head_len} bytes, frame of {len(view)}")
    try:
        header = json.loads(bytes(view[8 : 8 + head_len]))
    except ValueError as exc:
        raise DeployError(f"frame header is not JSON: {exc}") from exc
    arrays: dict[str, np.ndarray] = {}
    offset = 8 + head_len
    for item in header.pop("arrays", []):
        end = offset + int(item["nbytes"])
        if end > len(view):
            raise DeployError(f"truncated frame: array {item['key']!r} runs past the end")
        arrays[item["key"]] = _decode_array(item, view[offset:end])
        offset = end
    return header, arrays


def is_image(array: np.ndarray) -> bool:
    return array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3))


def _compress(image: np.ndarray, codec: str, jpeg_quality: int) -> bytes:
    import cv2

    if codec not in CODECS:
        raise DeployError(f"unknown image codec {codec!r}; choose one of {', '.join(CODECS)}")
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV's channel order
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buffer = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr, params)
    if not ok:
        raise DeployError(f"OpenCV could not encode a {image.shape} image as {codec}")
    return buffer.tobytes()


def _decode_array(item: Mapping[str, Any], blob: memoryview) -> np.ndarray:
    key, dtype, shape, codec = item["key"], item["dtype"], tuple(int(d) for d in item["shape"]), item["codec"]
    if dtype not in _DTYPES:
        raise DeployError(f"array {key!r}: dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
    if codec == "raw":
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if len(blob) != expected:
            raise DeployError(f"array {key!r}: {len(blob)} bytes for shape {list(shape)} {dtype} ({expected} expected)")
        return np.frombuffer(blob, dtype=dtype).reshape(shape)
    if codec not in CODECS:
        raise DeployError(f"array {key!r}: unknown codec {codec!r}")
    import cv2

    flags = cv2.IMREAD_GRAYSCALE if len(shape) == 2 else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(blob, np.uint8), flags)
    if image is None or image.shape != shape:
        got = None if image is None else list(image.shape)
        raise DeployError(f"array {key!r}: {codec} image decodes to {got}, header says {list(shape)}")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
