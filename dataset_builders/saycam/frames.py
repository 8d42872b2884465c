"""Pull the frames the corpora need out of a video in a single sequential decoding pass.

The frame taken for time ``t`` is the one on screen at ``t``: the last frame whose presentation
time is ``<= t`` (the first frame for ``t`` before it). Only the chosen frames are converted to
RGB and JPEG-encoded — converting is what makes naive extraction slow — and a frame chosen for
several times is encoded once. Decoding stops as soon as every requested time is served.

Not ``transformers.video_utils.load_video``: it reads one clip per call, picks frames by index from the
container's header frame count and converts each to an RGB array, where a recording here needs the frames at
thousands of transcript times, served by one pass (see dataset_builders/saycam/README.md, "Scale: processes,
shards, resume").
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import av


class VideoOpenError(Exception):
    """The file could not be opened as a video (corrupt, truncated header, no video stream)."""


@dataclass
class ExtractedFrames:
    jpegs: dict[int, bytes] = field(default_factory=dict)
    """Requested time (ms) -> JPEG bytes of the frame on screen then."""
    grid: list[int] = field(default_factory=list)
    """The served times of the periodic grid (``every_ms``), in order."""
    end_ms: int = 0
    """End of the decoded part: last decoded frame time plus one frame duration."""
    error: str | None = None
    """Why decoding stopped before the end of the file, if it did."""


def extract_frames(
    path: str | Path, times_ms: Iterable[int] = (), every_ms: float | None = None, jpeg_quality: int = 90
) -> ExtractedFrames:
    """JPEG frames of ``path`` at each of ``times_ms`` and, when ``every_ms`` is set, at 0, every_ms, 2·every_ms, ….

    Times past the end of the video are simply absent from the result. A file that cannot be
    opened raises :class:`VideoOpenError`; a decoding error part-way keeps what was decoded and
    records the error.
    """
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoOpenError(f"cannot open {path}: {error}") from None
    with container:
        if not container.streams.video:
            raise VideoOpenError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-threaded decoding; order and timestamps are unchanged
        frame_ms = 1000 / float(stream.average_rate or stream.guessed_rate or 30)
        # Transcript times count from the start of the video, whatever the container's first timestamp.
        start_ms = float(stream.start_time * stream.time_base) * 1000 if stream.start_time is not None else 0.0
        requests = _Requests(sorted(set(times_ms)), every_ms)
        result = ExtractedFrames()
        # Only the latest encoded frame is kept: a frame is only ever reused for consecutive requests.
        encoded_frame, encoded_jpeg = None, b""

        def serve(frame: av.VideoFrame, time: int) -> None:
            nonlocal encoded_frame, encoded_jpeg
            if frame is not encoded_frame:
                encoded_frame, encoded_jpeg = frame, _jpeg(frame, jpeg_quality)
            result.jpegs[time] = encoded_jpeg
            if requests.is_grid(time):
                result.grid.append(time)

        previous, previous_ms = None, 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                time_ms = frame.time * 1000 - start_ms if frame.time is not None else index * frame_ms
                while requests.next is not None and requests.next < time_ms:
                    serve(frame if previous is None else previous, requests.pop())
                previous, previous_ms = frame, time_ms
                if requests.next is None:
                    break
        except (av.FFmpegError, OSError) as error:
            result.error = f"decoding stopped at {previous_ms:.0f} ms: {error}"
        if previous is not None:
            result.end_ms = round(previous_ms + frame_ms)
            while requests.next is not None and requests.next < result.end_ms:
                serve(previous, requests.pop())
    return result


class _Requests:
    """Ascending merge of explicit times and an unbounded periodic grid."""

    def __init__(self, times: list[int], every_ms: float | None):
        self._times = iter(times)
        self._grid: Iterator[int] = (round(k * every_ms) for k in count()) if every_ms else iter(())
        self._grid_times: set[int] = set()
        self._next_time = next(self._times, None)
        self._next_grid = next(self._grid, None)

    @property
    def next(self) -> int | None:
        candidates = [t for t in (self._next_time, self._next_grid) if t is not None]
        return min(candidates) if candidates else None

    def is_grid(self, time: int) -> bool:
        return time in self._grid_times

    def pop(self) -> int:
        time = self.next
        if time == self._next_grid:
            self._grid_times.add(time)
            self._next_grid = next(self._grid, None)
        if time == self._next_time:
            self._next_time = next(self._times, None)
        return time


def _jpeg(frame: av.VideoFrame, quality: int) -> bytes:
    buffer = io.BytesIO()
    frame.to_image().save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
