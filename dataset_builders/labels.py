"""Labels of annotated frames for probes of vision features (``babyvlm probe linear``).

Each frame is labelled by its main group: the most numerous objects of one category and colour (frames where two
groups tie, or without objects, get no label):

- ``category`` and ``colour`` of the main group; ``count``, how many of it are visible (1-12);
- ``position``, the image quadrant of the centre of its boxes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PIL import Image

from .annotations import FrameAnnotation, load_annotations

LABELS = ("category", "colour", "count", "position")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")


def frame_labels(frame: FrameAnnotation, width: int, height: int) -> dict[str, str] | None:
    """The labels of one annotated frame, or None when it has no single main group.

    >>> from babyvlm.dataset_builders.annotations import ObjectBox
    >>> boxes = [ObjectBox(f"o{i}", "ball", "red", (10.0 + 40 * i, 10.0, 20.0, 20.0)) for i in range(2)]
    >>> frame_labels(FrameAnnotation("r", 0, 0, tuple(boxes)), 160, 120)
    {'category': 'ball', 'colour': 'red', 'count': '2', 'position': 'top left'}
    """
    groups = Counter((obj.category, obj.color) for obj in frame.objects)
    ranked = groups.most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    (category, colour), count = ranked[0]
    boxes = [obj.box for obj in frame.objects if (obj.category, obj.color) == (category, colour)]
    x = sum(box[0] + box[2] / 2 for box in boxes) / len(boxes)
    y = sum(box[1] + box[3] / 2 for box in boxes) / len(boxes)
    quadrant = QUADRANTS[2 * (y >= height / 2) + (x >= width / 2)]
    return {"category": category, "colour": colour, "count": str(count), "position": quadrant}


def labelled_frames(frames, annotations: str | Path) -> tuple[list[Image.Image], list[str], dict[str, list[str]]]:
    """Images, recordings and labels of the frames (records with ``image``, ``recording``, ``time_ms``, e.g. the
    SAYCam builder's ``frames`` corpus) that the annotations label: each frame takes the annotation nearest in time
    within half a frame period; frames without one or without a main group are left out."""
    world = load_annotations(annotations)
    by_recording: dict[str, list[FrameAnnotation]] = {}
    for frame in world.frames:
        by_recording.setdefault(frame.recording, []).append(frame)
    images, recordings, labels = [], [], {name: [] for name in LABELS}
    for index in range(len(frames)):
        record = frames[index]
        info = world.recordings.get(record["recording"])
        if info is None:
            continue
        nearest = min(
            by_recording.get(info.recording, []), key=lambda f: abs(f.time_ms - record["time_ms"]), default=None
        )
        if nearest is None or abs(nearest.time_ms - record["time_ms"]) > 500 / info.fps:
            continue
        frame_label = frame_labels(nearest, info.width, info.height)
        if frame_label is None:
            continue
        images.append(record["image"])
        recordings.append(record["recording"])
        for name in LABELS:
            labels[name].append(frame_label[name])
    if not images:
        raise ValueError(f"no frame is labelled by the annotations in {annotations}")
    return images, recordings, labels
