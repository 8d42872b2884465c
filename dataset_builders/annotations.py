"""Object annotations of a recorded world: what is where in every frame, and how objects leave it.

The toy world writes these files next to its raw SAYCam-layout corpus, and the DevCV item
generators read them to build benchmark items (counting, localization, picture vocabulary, VDR
exit directions ...). Three JSON-lines files, one object per line:

``recordings.jsonl`` — one :class:`RecordingInfo` per video::

    {"recording": "S_20130304_1000_01", "child": "S", "age_months": 9.2,
     "video": "videos/S/S_20130304_1000_01.mp4", "width": 160, "height": 120, "fps": 5, "num_frames": 50}

``frames.jsonl`` — one :class:`FrameAnnotation` per video frame, listing every visible object::

    {"recording": "S_20130304_1000_01", "frame_index": 12, "time_ms": 2400,
     "objects": [{"instance_id": "e0-o3", "category": "ball", "color": "red", "box": [40.0, 12.5, 22.0, 22.0]}]}

``exits.jsonl`` — one :class:`ExitEvent` per clip in which an object leaves the frame::

    {"recording": "S_20130304_1000_01", "instance_id": "e0-o3", "category": "ball", "color": "red",
     "direction": "top left", "start_ms": 1000, "end_ms": 3600}

Conventions: ``box`` is ``[x, y, w, h]`` in pixels of the *visible* part of the object (clipped to
the frame; an object entirely outside the frame is not listed), the same layout as the released
DevCV ``bb`` field. ``instance_id`` is unique within a recording and stays the same while the object
is on screen. An exit clip starts while the object is still at rest and ends on the first frame
where it is entirely gone; ``direction`` is one of :data:`EXIT_DIRECTIONS`, the vocabulary of the
VDR task. ``time_ms`` is the frame's presentation time from the start of the video.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

EXIT_DIRECTIONS = ("top", "bottom", "left", "right", "top left", "top right", "bottom left", "bottom right")

RECORDINGS_FILE = "recordings.jsonl"
FRAMES_FILE = "frames.jsonl"
EXITS_FILE = "exits.jsonl"


class AnnotationError(ValueError):
    """An annotation file or record does not follow the documented format."""


def _field(data: dict, name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise AnnotationError(f"missing field {name!r}")
    value = data[name]
    # bool is an int subclass: reject it where a number is expected.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise AnnotationError(f"field {name!r} must be {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise AnnotationError(f"field {name!r} must be >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class RecordingInfo:
    """One video of the corpus and who recorded it."""

    recording: str
    child: str
    age_months: float
    video: str
    """Path of the video relative to the corpus root."""
    width: int
    height: int
    fps: float
    num_frames: int

    @classmethod
    def from_dict(cls, data: dict) -> RecordingInfo:
        return cls(
            recording=_field(data, "recording", str),
            child=_field(data, "child", str),
            age_months=_non_negative("age_months", _field(data, "age_months", (int, float))),
            video=_field(data, "video", str),
            width=_non_negative("width", _field(data, "width", int)),
            height=_non_negative("height", _field(data, "height", int)),
            fps=_non_negative("fps", _field(data, "fps", (int, float))),
            num_frames=_non_negative("num_frames", _field(data, "num_frames", int)),
        )


@dataclass(frozen=True)
class ObjectBox:
    """One visible object in one frame."""

    instance_id: str
    category: str
    color: str
    box: tuple[float, float, float, float]
    """``[x, y, w, h]`` of the visible part, in pixels."""

    @classmethod
    def from_dict(cls, data: dict) -> ObjectBox:
        box = _field(data, "box", list)
        if len(box) != 4 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in box):
            raise AnnotationError(f"field 'box' must be 4 numbers [x, y, w, h], got {box!r}")
        if box[2] <= 0 or box[3] <= 0:
            raise AnnotationError(f"field 'box' must have a positive width and height, got {box!r}")
        return cls(
            instance_id=_field(data, "instance_id", str),
            category=_field(data, "category", str),
            color=_field(data, "color", str),
            box=tuple(float(v) for v in box),
        )


@dataclass(frozen=True)
class FrameAnnotation:
    """Every visible object of one video frame."""

    recording: str
    frame_index: int
    time_ms: int
    objects: tuple[ObjectBox, ...]

    @classmethod
    def from_dict(cls, data: dict) -> FrameAnnotation:
        objects = []
        for index, item in enumerate(_field(data, "objects", list)):
            if not isinstance(item, dict):
                raise AnnotationError(f"objects[{index}] must be an object, got {item!r}")
            try:
                objects.append(ObjectBox.from_dict(item))
            except AnnotationError as error:
                raise AnnotationError(f"objects[{index}]: {error}") from None
        return cls(
            recording=_field(data, "recording", str),
            frame_index=_non_negative("frame_index", _field(data, "frame_index", int)),
            time_ms=_non_negative("time_ms", _field(data, "time_ms", int)),
            objects=tuple(objects),
        )


@dataclass(frozen=True)
class ExitEvent:
    """A clip in which one object leaves the frame through one side or corner."""

    recording: str
    instance_id: str
    category: str
    color: str
    direction: str
    start_ms: int
    end_ms: int

    @classmethod
    def from_dict(cls, data: dict) -> ExitEvent:
        direction = _field(data, "direction", str)
        if direction not in EXIT_DIRECTIONS:
            raise AnnotationError(f"field 'direction' must be one of {list(EXIT_DIRECTIONS)}, got {direction!r}")
        start_ms = _non_negative("start_ms", _field(data, "start_ms", int))
        end_ms = _field(data, "end_ms", int)
        if end_ms <= start_ms:
            raise AnnotationError(f"field 'end_ms' ({end_ms}) must be after 'start_ms' ({start_ms})")
        return cls(
            recording=_field(data, "recording", str),
            instance_id=_field(data, "instance_id", str),
            category=_field(data, "category", str),
            color=_field(data, "color", str),
            direction=direction,
            start_ms=start_ms,
            end_ms=end_ms,
        )


Annotation = TypeVar("Annotation", RecordingInfo, FrameAnnotation, ExitEvent)


def write_jsonl(path: str | Path, items: Iterable[RecordingInfo | FrameAnnotation | ExitEvent]) -> None:
    """Write annotations to ``path``, one JSON object per line."""
    with open(path, "w", encoding="utf-8") as handle:
        # asdict recurses into nested objects; tuples serialise as JSON lists.
        handle.writelines(json.dumps(asdict(item), ensure_ascii=False) + "\n" for item in items)


def read_jsonl(path: str | Path, kind: type[Annotation]) -> list[Annotation]:
    """Read and validate a JSON-lines annotation file of ``kind`` records.

    Raises :class:`AnnotationError` naming the file, line and field of the first invalid record.
    """
    items = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise AnnotationError(f"{path}:{line_number}: invalid JSON ({error.msg})") from None
            if not isinstance(data, dict):
                raise AnnotationError(f"{path}:{line_number}: expected a JSON object, got {type(data).__name__}")
            try:
                items.append(kind.from_dict(data))
            except AnnotationError as error:
                raise AnnotationError(f"{path}:{line_number}: {error}") from None
    return items


@dataclass(frozen=True)
class WorldAnnotations:
    """All annotations of one corpus, checked for consistency across the three files."""

    recordings: dict[str, RecordingInfo]
    frames: list[FrameAnnotation]
    exits: list[ExitEvent]

    def frames_of(self, recording: str) -> list[FrameAnnotation]:
        """The frame annotations of one recording, in frame order."""
        return sorted((f for f in self.frames if f.recording == recording), key=lambda f: f.frame_index)

    def children(self) -> list[str]:
        """The children whose recordings are annotated, sorted."""
        return sorted({info.child for info in self.recordings.values()})

    def of_children(self, children: Iterable[str]) -> WorldAnnotations:
        """Only the recordings of ``children`` with their frames and exits; ``ValueError`` naming a child who has
        none, and the children who have."""
        children = set(children)
        unknown = sorted(children - set(self.children()))
        if unknown:
            raise ValueError(
                f"no annotated recording of child {', '.join(map(repr, unknown))}; "
                f"the annotations' children are {', '.join(self.children()) or 'none'}"
            )
        recordings = {name: info for name, info in self.recordings.items() if info.child in children}
        return WorldAnnotations(
            recordings=recordings,
            frames=[frame for frame in self.frames if frame.recording in recordings],
            exits=[event for event in self.exits if event.recording in recordings],
        )


def load_annotations(folder: str | Path) -> WorldAnnotations:
    """Read ``recordings.jsonl``, ``frames.jsonl`` and ``exits.jsonl`` from ``folder`` and validate them.

    Besides each record's own format, checks that every frame and exit names a known recording,
    that frame indices lie inside the recording, and that every exiting instance appears in a frame.
    """
    folder = Path(folder)
    recordings: dict[str, RecordingInfo] = {}
    for info in read_jsonl(folder / RECORDINGS_FILE, RecordingInfo):
        if info.recording in recordings:
            raise AnnotationError(f"{folder / RECORDINGS_FILE}: recording {info.recording!r} is listed twice")
        recordings[info.recording] = info
    frames = read_jsonl(folder / FRAMES_FILE, FrameAnnotation)
    exits = read_jsonl(folder / EXITS_FILE, ExitEvent)

    seen_instances: set[tuple[str, str]] = set()
    for frame in frames:
        info = recordings.get(frame.recording)
        if info is None:
            raise AnnotationError(
                f"{folder / FRAMES_FILE}: frame {frame.frame_index} names unknown recording {frame.recording!r}"
            )
        if frame.frame_index >= info.num_frames:
            raise AnnotationError(
                f"{folder / FRAMES_FILE}: frame {frame.frame_index} of {frame.recording!r} "
                f"is past its {info.num_frames} frames"
            )
        seen_instances.update((frame.recording, obj.instance_id) for obj in frame.objects)
    for event in exits:
        if event.recording not in recordings:
            raise AnnotationError(
                f"{folder / EXITS_FILE}: exit of {event.instance_id!r} names unknown recording {event.recording!r}"
            )
        if (event.recording, event.instance_id) not in seen_instances:
            raise AnnotationError(
                f"{folder / EXITS_FILE}: instance {event.instance_id!r} of {event.recording!r} "
                "exits but is never visible"
            )
    return WorldAnnotations(recordings=recordings, frames=frames, exits=exits)
