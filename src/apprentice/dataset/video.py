"""Video: background episode encoding, crash-safe append into the concatenated mp4, frame-accurate decoding.

Timing contract (lerobot v3.0): frame i of an episode lives at from_timestamp + i/fps in its file, and
from_timestamp is the number of frames already in the file divided by fps. We encode with pts = i in a
1/fps time base and renumber packets by whole frames when concatenating, so the contract holds exactly.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from apprentice.dataset.format import DatasetError, replace_atomically, tmp_path

log = logging.getLogger(__name__)

# vcodec argument -> (PyAV encoder, name stored in info.json "video.codec")
CODECS = {"libsvtav1": ("libsvtav1", "av1"), "av1": ("libsvtav1", "av1"),
          "h264": ("libx264", "h264"), "libx264": ("libx264", "h264")}
TOLERANCE_S = 1e-4  # lerobot's tolerance_s: a decoded frame matches a query within this many seconds


def codec_names(vcodec: str) -> tuple[str, str]:
    if vcodec not in CODECS:
        raise DatasetError(f"vcodec {vcodec!r} is not supported; use 'libsvtav1' (lerobot's default) or 'h264'")
    return CODECS[vcodec]


def vcodec_for(codec: str, where: str) -> str:
    """The vcodec argument that encodes what info.json calls `codec` ("av1" -> "libsvtav1", "h264")."""
    for vcodec, (_, stored) in CODECS.items():
        if stored == codec:
            return vcodec
    raise DatasetError(f"{where} is stored as {codec!r}; only av1 and h264 are encoded here — re-encode with "
                       "`apprentice dataset reencode-videos`")


def encoder_options(encoder: str, *, gop: int, crf: int, preset: int | None) -> dict[str, str]:
    # lerobot's settings: GOP 2 keeps random access to at most one extra decoded frame, CRF 30.
    options = {"g": str(gop), "crf": str(crf)}
    if encoder == "libsvtav1":
        options["preset"] = str(12 if preset is None else preset)
    else:
        # No B-frames: packets stay in presentation order, so appending episodes is a plain pts shift.
        options["bf"] = "0"
        options["preset"] = "veryfast" if preset is None else str(preset)
    return options


class EpisodeEncoder:
    """Encodes one camera's frames of one episode into `path` on a background thread.

    `put` only enqueues, so a caller is not held up by the encoder — until `buffer_s` seconds of frames
    wait (10 s of 640x480 is ~280 MB): then it waits for room, so an encoder slower than the camera
    slows the caller instead of growing memory without bound. `finish` waits for the queue to drain and
    closes the file. Encoder failures surface from `finish` as DatasetError.
    """

    def __init__(self, path: Path, *, fps: int, vcodec: str, gop: int = 2, crf: int = 30,
                 preset: int | None = None, pix_fmt: str = "yuv420p", buffer_s: float = 10.0) -> None:
        self.path = path
        self.fps = fps
        self.encoder, _ = codec_names(vcodec)
        self.options = encoder_options(self.encoder, gop=gop, crf=crf, preset=preset)
        self.pix_fmt = pix_fmt
        self.frames = 0
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max(1, round(buffer_s * fps)))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"encode-{path.name}", daemon=True)
        self._started = False

    def put(self, frame: np.ndarray) -> None:
        if not self._started:
            self._started = True
            self._thread.start()
        self.frames += 1
        self._queue.put(frame)

    def _run(self) -> None:
        container = None
        # SVT-AV1 prints a banner per encoder to stderr unless told otherwise; keep errors only.
        os.environ.setdefault("SVT_LOG", "1")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.path), "w")
            stream = None
            pts = 0
            while (frame := self._queue.get()) is not None:
                if stream is None:
                    stream = container.add_stream(self.encoder, rate=self.fps, options=self.options)
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = self.pix_fmt
                    stream.codec_context.time_base = Fraction(1, self.fps)
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = pts
                video_frame.time_base = Fraction(1, self.fps)
                pts += 1
                container.mux(stream.encode(video_frame))
            if stream is not None:
                container.mux(stream.encode(None))
        except BaseException as e:  # reported by finish(); the thread must not die silently
            self._error = e
            while self._queue.get() is not None:  # drain so finish() does not wait forever
                pass
        finally:
            if container is not None:
                container.close()

    def finish(self) -> int:
        """Flush and close; returns the number of frames written."""
        if not self._started:
            return 0
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise DatasetError(f"{self.path}: encoding with {self.encoder} failed: {self._error}")
        return self.frames

    def abort(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join()
        self.path.unlink(missing_ok=True)


def encode_frames(path: Path, frames: Iterable[np.ndarray], *, fps: int, vcodec: str, **options: Any) -> int:
    """Encode HWC uint8 frames into a new mp4 at `path` (frame i at pts i/fps); returns how many."""
    encoder = EpisodeEncoder(path, fps=fps, vcodec=vcodec, **options)
    try:
        for frame in frames:
            encoder.put(frame)
        return encoder.finish()
    except BaseException:
        encoder.abort()
        raise


def _open_input(path: Path) -> Any:
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise DatasetError(f"{path}: video file missing; restore it or re-record those episodes") from None
    except (av.FFmpegError, OSError) as e:
        raise DatasetError(f"{path}: unreadable video ({e}); the file is truncated or corrupt") from None
    if not container.streams.video:
        container.close()
        raise DatasetError(f"{path}: no video stream; the file is truncated or corrupt")
    return container


def _signature(stream: Any) -> tuple[Any, ...]:
    ctx = stream.codec_context
    return ctx.name, ctx.width, ctx.height, ctx.format.name if ctx.format else None, bytes(ctx.extradata or b"")


def video_signature(path: Path) -> tuple[Any, ...]:
    """What must be equal for packets of two mp4s to share one file: codec, size, pixel format and the
    codec header (extradata: H.264 SPS/PPS depend on e.g. the CRF; other packets decode to wrong pixels)."""
    with _open_input(path) as container:
        return _signature(container.streams.video[0])


def probe_video(path: Path) -> dict[str, Any]:
    """Frame count, end time (s), size and codec of an mp4 by demuxing only (no decoding)."""
    with _open_input(path) as container:
        stream = container.streams.video[0]
        count, end = 0, 0
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                count += 1
                end = max(end, packet.pts + (packet.duration or 0))
        except (av.FFmpegError, OSError) as e:
            raise DatasetError(f"{path}: unreadable video ({e}); the file is truncated or corrupt") from None
        return {"frames": count, "end_s": float(end * stream.time_base), "height": stream.height,
                "width": stream.width, "codec": stream.codec_context.name}


class VideoReader:
    """Decodes frames by timestamp from one mp4, keeping the container open between calls.

    Sequential or nearby queries decode forward from the current position; others seek to the
    keyframe at or before the target first (with GOP 2 that is at most one extra frame to decode).
    """

    def __init__(self, path: Path | str, *, tolerance_s: float = TOLERANCE_S, opener: Any = None,
                 threads: int | None = None) -> None:
        self.path = path
        self.tolerance_s = tolerance_s
        try:
            self._file = opener(path) if opener else None
            self.container = av.open(self._file if self._file else str(path))
        except FileNotFoundError:
            raise DatasetError(f"{path}: video file missing; restore it or re-record those episodes") from None
        except (av.FFmpegError, OSError) as e:
            raise DatasetError(f"{path}: unreadable video ({e}); the file is truncated or corrupt") from None
        if not self.container.streams.video:
            self.container.close()
            raise DatasetError(f"{path}: no video stream; the file is truncated or corrupt")
        self.stream = self.container.streams.video[0]
        # Threaded decoding helps one process; in DataLoader workers (one per core) it only oversubscribes.
        self.stream.thread_type = "AUTO" if threads is None or threads > 1 else "SLICE"
        if threads is not None:
            self.stream.thread_count = threads
        self._frames: Any = None
        self._last: av.VideoFrame | None = None
        self.pid = os.getpid()

    def close(self) -> None:
        self.container.close()
        if self._file is not None:
            self._file.close()

    def _seek(self, t: float) -> None:
        self.container.seek(int(t / self.stream.time_base), stream=self.stream, backward=True, any_frame=False)
        self._frames = self.container.decode(self.stream)
        self._last = None

    def _next(self, t: float) -> av.VideoFrame:
        try:
            frame = next(self._frames)
        except (StopIteration, av.FFmpegError) as e:
            self._frames = None
            raise DatasetError(f"{self.path}: no frame at {t:.4f} s (video ends earlier or is corrupt: "
                               f"{e or 'end of stream'}); run `apprentice dataset verify`") from None
        self._last = frame
        return frame

    def frame_at(self, t: float) -> np.ndarray:
        """The (H, W, 3) uint8 frame whose timestamp is within tolerance of `t`."""
        last = self._last
        tol = self.tolerance_s
        if last is not None and abs(last.time - t) < tol:
            return last.to_ndarray(format="rgb24")
        # Forward within ~1 s is cheaper than a seek (which also restarts the decoder).
        if self._frames is None or last is None or not (last.time < t <= last.time + 1.0):
            self._seek(t)
        frame = self._next(t)
        while frame.time < t - tol:
            frame = self._next(t)
        if abs(frame.time - t) >= tol:
            raise DatasetError(f"{self.path}: nearest frame to {t:.4f} s is at {frame.time:.4f} s "
                               f"(tolerance {tol} s); the video timestamps disagree with the metadata")
        return frame.to_ndarray(format="rgb24")

    def frames_at(self, timestamps: list[float]) -> np.ndarray:
        return np.stack([self.frame_at(t) for t in timestamps])


@dataclass(frozen=True)
class VideoSegment:
    """Frames [start, end) of one camera's mp4, frame i playing at i/fps (an episode's slice of a file)."""

    path: Path
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class SegmentInfo:
    keyframe_start: bool  # packets can be copied only from a keyframe on
    nbytes: int
    signature: tuple[Any, ...]  # see video_signature; segments share a file only when theirs are equal


def _frame_of(packet: av.Packet, time_base: Fraction, fps: int) -> int:
    return round(packet.pts * time_base * fps)


def _segment_packets(container: Any, segment: VideoSegment, fps: int) -> Iterator[tuple[int, av.Packet]]:
    """(source frame, packet) for the segment's frames, in order, by demuxing from the keyframe before it."""
    stream = container.streams.video[0]
    time_base = stream.time_base
    container.seek(int(Fraction(segment.start, fps) / time_base), stream=stream, backward=True, any_frame=False)
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        frame = _frame_of(packet, time_base, fps)
        if frame >= segment.end:
            break  # our codecs (and lerobot's) store packets in presentation order: no B-frames
        if frame >= segment.start:
            yield frame, packet


def segment_info(segment: VideoSegment, fps: int) -> SegmentInfo:
    """Whether a segment can be copied packet for packet, its size and codec header (demux only)."""
    with _open_input(segment.path) as container:
        packets = list(_segment_packets(container, segment, fps))
        signature = _signature(container.streams.video[0])
    if len(packets) != segment.frames:
        raise DatasetError(f"{segment.path}: holds {len(packets)} frames in {segment.start}..{segment.end - 1}, "
                           f"meta/episodes needs {segment.frames}; run `apprentice dataset verify`")
    return SegmentInfo(keyframe_start=bool(packets[0][1].is_keyframe), nbytes=sum(p.size for _, p in packets),
                       signature=signature)


def concat_segments(dst: Path, segments: list[VideoSegment], fps: int) -> None:
    """Write `dst` as the segments' frames back to back by copying packets (no re-encode), atomically.

    The one packet copy: the writer appends episodes with it (the file's committed frames first, so a tail
    a crash left is dropped) and repair truncates with it. Every segment must start on a keyframe and all
    must share one codec header (see video_signature / segment_info); frame k of the output gets pts k in a
    1/fps time base, the layout the writer produces.
    """
    tmp = tmp_path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(tmp), "w", format="mp4") as out:
            out_stream = None
            written = 0
            for segment in segments:
                with _open_input(segment.path) as inp:
                    stream = inp.streams.video[0]
                    if out_stream is None:
                        out_stream = out.add_stream_from_template(stream, opaque=True)
                    first = written
                    for frame, packet in _segment_packets(inp, segment, fps):
                        # Whole frames in a 1/fps time base; the muxer rescales to the stream's own.
                        delay = _frame_of(packet, stream.time_base, fps) - round(
                            (packet.dts if packet.dts is not None else packet.pts) * stream.time_base * fps)
                        packet.time_base = Fraction(1, fps)
                        packet.pts = first + frame - segment.start
                        packet.dts = packet.pts - delay
                        packet.duration = 1
                        packet.stream = out_stream
                        out.mux(packet)
                        written += 1
                    if written - first != segment.frames:
                        raise DatasetError(f"{segment.path}: frames {segment.start}..{segment.end - 1} are not all "
                                           "in the file; run `apprentice dataset verify`")
    except (av.FFmpegError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"{dst}: could not copy video packets ({e}); the file is unchanged") from None
    except DatasetError:
        tmp.unlink(missing_ok=True)
        raise
    replace_atomically(tmp, dst)
