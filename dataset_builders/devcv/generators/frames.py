"""Frames out of the corpus videos, each recording decoded once, on first use.

Extraction reuses the SAYCam builder's single-pass decoder (:func:`~..saycam.frames.extract_frames`).
A frame is requested at the middle of its display interval, so a ``time_ms`` rounded to the
millisecond still lands on the frame it annotates whatever the frame rate.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from PIL import Image

from ...annotations import RecordingInfo
from ...saycam.frames import VideoOpenError, extract_frames
from .report import Skip

JPEG_QUALITY = 95
DECODED_CACHE_BYTES = 256 << 20
"""Memory for decoded frames: generators crop the same frames again and again, in no useful order."""
UNREADABLE_VIDEO = "unreadable_video"
MISSING_FRAME = "missing_frame"


class FrameUnavailable(Skip):
    """A frame that cannot be read: the candidate using it is skipped with ``reason``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason)
        self.detail = detail


class FrameStore:
    """JPEG bytes and decoded images of the frames the generators may use.

    ``wanted`` lists, per recording, every frame index any generator may ask for; the first request
    for a recording extracts all of them in one decoding pass.
    """

    def __init__(self, video_root: str | Path, recordings: dict[str, RecordingInfo], wanted: dict[str, Iterable[int]]):
        self.video_root = Path(video_root)
        self.recordings = recordings
        self.wanted = {recording: sorted(set(indices)) for recording, indices in wanted.items()}
        self._jpegs: dict[str, dict[int, bytes]] = {}
        self._errors: dict[str, str] = {}
        largest_frame = max((3 * info.width * info.height for info in recordings.values()), default=1)
        self.image = lru_cache(maxsize=max(16, DECODED_CACHE_BYTES // largest_frame))(self._decode)

    def _load(self, recording: str) -> dict[int, bytes]:
        info = self.recordings[recording]
        path = self.video_root / info.video
        frame_ms = 1000 / info.fps
        times = {index: round((index + 0.5) * frame_ms) for index in self.wanted.get(recording, [])}
        try:
            extracted = extract_frames(path, times_ms=times.values(), jpeg_quality=JPEG_QUALITY)
        except VideoOpenError as error:
            self._errors[recording] = str(error)
            return {}
        if extracted.error:
            self._errors[recording] = f"{path}: {extracted.error}"
        return {index: extracted.jpegs[time] for index, time in times.items() if time in extracted.jpegs}

    def jpeg(self, recording: str, frame_index: int) -> bytes:
        """The JPEG bytes of one frame; raises :class:`FrameUnavailable` naming the video and frame."""
        if recording not in self._jpegs:
            self._jpegs[recording] = self._load(recording)
        try:
            return self._jpegs[recording][frame_index]
        except KeyError:
            video = self.video_root / self.recordings[recording].video
            if recording in self._errors and not self._jpegs[recording]:
                raise FrameUnavailable(UNREADABLE_VIDEO, self._errors[recording]) from None
            if frame_index not in self.wanted.get(recording, []):
                raise ValueError(f"frame {frame_index} of {recording!r} was not declared as wanted") from None
            raise FrameUnavailable(MISSING_FRAME, f"frame {frame_index} of {video} could not be decoded") from None

    def _decode(self, recording: str, frame_index: int) -> Image.Image:
        """The decoded RGB frame (``image``: the same, cached); never modify the returned image."""
        return Image.open(io.BytesIO(self.jpeg(recording, frame_index))).convert("RGB")

    def errors(self) -> dict[str, str]:
        """Recording -> why its video could not be (fully) decoded, for the report."""
        return dict(self._errors)
