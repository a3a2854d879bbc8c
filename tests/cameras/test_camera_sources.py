"""Frame sources: synthetic pattern, looping video file (real mp4 via PyAV), pacing statistics."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from apprentice.cameras.sources import (
    CameraError,
    FramePacer,
    SyntheticSource,
    VideoFileSource,
    make_source,
    synthetic_index,
)


def test_synthetic_frames_carry_their_index() -> None:
    src = make_source("synthetic", 64, 48)
    frames = [src.read() for _ in range(3)]
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert [synthetic_index(f) for f in frames] == [0, 1, 2]
    assert not np.array_equal(frames[0][1:], frames[1][1:])  # bars move
    assert isinstance(make_source("synthetic:noise", 8, 8), SyntheticSource)


def _mp4(path: Path, n: int) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            img = np.full((48, 64, 3), i * 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_video_file_loops_and_scales(tmp_path: Path) -> None:
    src = make_source(str(_mp4(tmp_path / "v.mp4", 5)), 32, 24)
    assert isinstance(src, VideoFileSource)
    means = [src.read().mean() for _ in range(12)]
    src.close()
    assert np.allclose(means[:5], [0, 20, 40, 60, 80], atol=4)
    assert np.allclose(means[5:10], means[:5], atol=1)  # looped back to the start
    once = VideoFileSource(tmp_path / "v.mp4", loop=False)
    assert once.read().shape == (48, 64, 3)
    for _ in range(4):
        once.read()
    with pytest.raises(CameraError, match="end of video"):
        once.read()


def test_bad_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="'nope'"):
        make_source("nope")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(CameraError, match=r"bad\.mp4"):
        make_source(str(tmp_path / "bad.mp4"))
    with pytest.raises(CameraError, match="/dev/video99"):
        make_source("/dev/video99")


def test_pacer_counts_late_and_dropped() -> None:
    p = FramePacer(10)
    t = 0.0
    assert p.delay(t) == 0
    p.captured(t)
    assert p.delay(0.05) == pytest.approx(0.05)
    p.captured(0.1)
    p.captured(0.45)  # 350 ms gap: 2 frames dropped, and late
    assert (p.frames, p.dropped, p.late) == (3, 2, 1)
    assert p.delay(0.46) == pytest.approx(0.09)
