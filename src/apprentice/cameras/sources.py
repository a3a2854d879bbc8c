"""Frame sources: an OpenCV/V4L2 device, a looping video file (PyAV), or a synthetic test pattern.

Every source returns uint8 RGB (H, W, 3) frames of the size it was asked for; `make_source` picks one
from a string, as the camera node's `source` parameter gives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from apprentice.cameras.image import ImageError


class CameraError(ImageError):
    """A camera or video source cannot be opened or read (names the device/file)."""


class FrameSource(Protocol):
    width: int
    height: int
    paced: bool  # True when read() itself waits for the next frame (a real device)

    def read(self) -> np.ndarray: ...

    def close(self) -> None: ...


class SyntheticSource:
    """Moving colour bars with the frame number written into the top-left pixels (tests can read it back)."""

    paced = False

    def __init__(self, width: int = 640, height: int = 480, pattern: str = "bars") -> None:
        if pattern not in ("bars", "noise"):
            raise CameraError(f"synthetic pattern '{pattern}' is not 'bars' or 'noise'")
        self.width, self.height, self.pattern = width, height, pattern
        self.index = 0
        bars = np.array(
            [
                [255, 255, 255],
                [255, 255, 0],
                [0, 255, 255],
                [0, 255, 0],
                [255, 0, 255],
                [255, 0, 0],
                [0, 0, 255],
                [0, 0, 0],
            ],
            np.uint8,
        )
        self._row = bars[np.arange(width) * len(bars) // width]
        self._rng = np.random.default_rng(0)

    def read(self) -> np.ndarray:
        if self.pattern == "noise":
            frame = self._rng.integers(0, 256, (self.height, self.width, 3), dtype=np.uint8)
        else:
            frame = np.broadcast_to(np.roll(self._row, self.index * 4, axis=0), (self.height, self.width, 3)).copy()
        frame[0, :4, 0] = np.frombuffer(np.uint32(self.index).tobytes(), np.uint8)  # little-endian counter
        self.index += 1
        return frame

    def close(self) -> None:
        pass


def synthetic_index(frame: np.ndarray) -> int:
    """The frame number SyntheticSource wrote into `frame` (for tests and latency checks)."""
    return int(np.frombuffer(np.ascontiguousarray(frame[0, :4, 0]).tobytes(), np.uint32)[0])


class VideoFileSource:
    """Frames of a video file decoded with PyAV, looping at the end, scaled to width x height."""

    paced = False

    def __init__(self, path: str | Path, width: int = 0, height: int = 0, loop: bool = True) -> None:
        import av

        self.path, self.loop = Path(path), loop
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError, FileNotFoundError) as exc:
            raise CameraError(f"cannot open video file {self.path}: {exc}") from exc
        self._stream.thread_type = "AUTO"
        self.width = width or self._stream.codec_context.width
        self.height = height or self._stream.codec_context.height
        self._frames = self._container.decode(self._stream)

    def read(self) -> np.ndarray:
        for _ in range(2):
            try:
                frame = next(self._frames)
                return frame.to_ndarray(format="rgb24", width=self.width, height=self.height)
            except StopIteration:
                if not self.loop:
                    raise CameraError(f"{self.path}: end of video") from None
                self._container.seek(0)
                self._frames = self._container.decode(self._stream)
        raise CameraError(f"{self.path}: no decodable video frames")

    def close(self) -> None:
        self._container.close()


class OpenCVSource:
    """A V4L2/UVC camera through OpenCV; read() blocks until the device delivers the next frame."""

    paced = True

    def __init__(
        self, device: int | str, width: int = 640, height: int = 480, fps: float = 30.0, fourcc: str = "MJPG"
    ) -> None:
        import cv2

        self.device = device
        backend = cv2.CAP_V4L2 if isinstance(device, int) or str(device).startswith("/dev/") else cv2.CAP_ANY
        self._cap = cv2.VideoCapture(device, backend)
        if not self._cap.isOpened():
            raise CameraError(f"cannot open camera {device}: is it connected, and is the user in group 'video'?")
        if fourcc:
            self._cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap.set(cv2.CAP_PROP_FPS, fps)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (self.width, self.height) != (width, height):
            self._cap.release()
            raise CameraError(
                f"camera {device} gives {self.width}x{self.height}, not the {width}x{height} "
                "asked for; use a size it supports (v4l2-ctl --list-formats-ext)"
            )

    def read(self) -> np.ndarray:
        ok, bgr = self._cap.read()
        if not ok:
            raise CameraError(f"camera {self.device} stopped delivering frames (unplugged?)")
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def close(self) -> None:
        self._cap.release()


def make_source(source: str, width: int = 640, height: int = 480, fps: float = 30.0) -> FrameSource:
    """'synthetic' | 'synthetic:noise' | device index '0' | '/dev/videoN' | a video file path."""
    if source.startswith("synthetic"):
        return SyntheticSource(width, height, source.partition(":")[2] or "bars")
    if source.isdigit():
        return OpenCVSource(int(source), width, height, fps)
    if source.startswith("/dev/video"):
        return OpenCVSource(source, width, height, fps)
    if Path(source).is_file():
        return VideoFileSource(source, width, height)
    raise CameraError(f"camera source '{source}' is not 'synthetic', a device (0, /dev/video0) or a video file")


class FramePacer:
    """Paces unpaced sources to `fps` and counts late frames (capture+publish overran the period) and
    dropped frames (gaps of more than 1.5 periods between captures, e.g. a device skipping frames)."""

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise CameraError(f"fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self.next_t: float | None = None
        self.last_capture: float | None = None
        self.frames = self.late = self.dropped = 0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next capture (0 when already late)."""
        if self.next_t is None:
            self.next_t = now
        return max(0.0, self.next_t - now)

    def captured(self, t: float) -> None:
        """Record a capture at time t (seconds, monotonic)."""
        self.frames += 1
        if self.last_capture is not None:
            gap = t - self.last_capture
            if gap > 1.5 * self.period:
                self.dropped += round(gap / self.period) - 1
        self.last_capture = t
        if self.next_t is not None:
            if t - self.next_t > 0.5 * self.period:
                self.late += 1
                self.next_t = t  # re-anchor rather than bursting to catch up
            self.next_t += self.period
