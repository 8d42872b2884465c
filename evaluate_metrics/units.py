"""The unit DevCV items share, for clustered intervals and tests (evaluate_metrics/README.md, "Intervals and tests").

Items cut from one recording, episode or video share objects, scenes and the camera: their answers are not
independent, so the bootstrap resamples whole units. An item's unit is the recording (or video) of what it asks
about, the frame, clip, query or target it is cut from, not of its distractors: distractors are drawn from the
whole split, so they tie every item to many others a little, and joining items through them makes one cluster of
a whole task (every generated Picture Vocabulary item shows crops of several recordings). Where the unit comes
from, first match:

1. a generated item's ``provenance``, at the first of :data:`QUERY_PATHS` that names a ``recording``;
2. a released item's id, then its VDR preview (``gif``), then its first image path, where the source's
   recordings have names of a known form (:data:`RELEASED_UNITS`);
3. none: the item is its own unit.

Units are only worth resampling when there are enough of them (:func:`clustering`): with fewer than
:data:`MIN_CLUSTERS`, or one holding more than :data:`MAX_CLUSTER_SHARE` of the items, the bootstrap would redraw a
handful of blocks and give an interval of nearly no width; the items are resampled instead, with a note.

>>> item_unit({"id": "Y_20190426_1412_01_clip_010", "source": "saycam", "provenance": "{}"})
('recording', 'Y_20190426_1412_01')
>>> item_unit({"id": "c8bf04e6-74f2-4a5e-8c26-615246886744/7200_7332_lamp", "source": "ego4d"})
('video', 'c8bf04e6-74f2-4a5e-8c26-615246886744')
>>> item_unit({"id": "pv_3", "source": "toyworld", "provenance": json.dumps(
...     {"target": {"recording": "S_20200101_0900_01"}, "distractors": [{"recording": "A_20200102_1000_01"}]})})
('recording', 'S_20200101_0900_01')
>>> item_unit({"id": "count_131", "source": "saycam", "provenance": "{}"})
('item', '')
>>> clustering(["r1", "r1", "r2", "r2", "r3", "r4", "r5", ""], ["recording"] * 7 + ["item"], list("abcdefgh"))
Clustering(labels=['r1', 'r1', 'r2', 'r2', 'r3', 'r4', 'r5', 'item:h'], unit='recording', note=None)
>>> clustering(["r1", "r1", "r1", "r2"], ["recording"] * 4, list("abcd")).note
'resampled by item: 2 clusters are too few to resample (fewer than 5)'
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from babyvlm.item_ids import released_id

PROVENANCE_UNIT = "recording"
"""The key under which generated items' provenance names the recording a frame comes from."""
QUERY_PATHS: tuple[tuple[str | int, ...], ...] = (
    (),  # the item's own frame or clip: Counting, Subitizing, Localization, Left/Right, VDR, Who Has More synthetic
    ("query",),  # Spatial Details: the query crop (the options are other frames)
    ("target",),  # Picture Vocabulary: the named word's crop (the distractors are other words')
    ("learned", 0),  # Memory: the first object learned, the one the dialogue is built around
    ("options", 0),  # Who Has More naturalistic: two peer frames, the first shown (their order is seeded)
    ("images", 0),  # Looking While Listening: two peer crops, the first shown
)
"""Where in a generated item's provenance its query's ``recording`` is, first match."""
SAYCAM_RECORDING = re.compile(r"(?<![A-Za-z0-9])[A-Z]_\d{8}_\d{4}_\d{2}(?!\d)")
"""``{child}_{YYYYMMDD}_{HHMM}_{segment}``: SAYCam's recordings (and the toy world's, which copy the form)."""
VIDEO_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""Ego4D's video ids."""
RELEASED_UNITS: dict[str, tuple[str, re.Pattern]] = {
    # SAYCam VDR ids: <recording>_clip_<k>, in the train split with _original / _augmented after it.
    "saycam": ("recording", SAYCAM_RECORDING),
    "toyworld": ("recording", SAYCAM_RECORDING),
    # Ego4D VDR ids: <video uuid>/<start>_<end>_<object>.
    "ego4d": ("video", VIDEO_UUID),
}
"""Per source: the unit its released ids or image paths spell, and its form. The other released ids
(``count_131``, ``memory_task_26``) spell none; NIH stimuli and synthetic pictures come from no recording (each item
is its own unit); BabyView's released items name no unit the builder knows."""
ITEM_UNIT = "item"
"""The unit of an item that records none: itself."""
MIN_CLUSTERS = 5
"""Fewer units than this are too few to resample: the items are resampled instead."""
MAX_CLUSTER_SHARE = 0.5
"""A unit holding more than this share of the items makes the items be resampled instead."""


def _at(value, path: Sequence[str | int]):
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and len(value) > step:
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def _provenance_unit(provenance) -> str:
    for path in QUERY_PATHS:
        found = _at(provenance, path)
        if isinstance(found, dict) and found.get(PROVENANCE_UNIT):
            return str(found[PROVENANCE_UNIT])
    return ""


def _released_places(record: dict) -> list[str]:
    """Where a released item may spell its unit, in order: its id, its VDR preview, its first image."""
    paths = list(record.get("image_paths") or [])
    return [released_id(record), str(record.get("gif") or ""), *paths[:1]]


def item_unit(record: dict) -> tuple[str, str]:
    """The kind of unit an item records and its unit key (``("item", "")`` when it records none)."""
    try:
        provenance = json.loads(record.get("provenance") or "{}")
    except json.JSONDecodeError:
        provenance = {}
    unit = _provenance_unit(provenance)
    if unit:
        return PROVENANCE_UNIT, unit
    kind, pattern = RELEASED_UNITS.get(record.get("source") or "", (None, None))
    for place in _released_places(record) if pattern else []:
        if match := pattern.search(place):
            return kind, match[0]
    return ITEM_UNIT, ""


@dataclass(frozen=True)
class Clustering:
    """The cluster label of each item, the unit they were clustered by (``item``: each its own), and why the
    items' units were set aside (None when they were not)."""

    labels: list[str]
    unit: str
    note: str | None


def clustering(units: Sequence[str], kinds: Sequence[str], ids: Sequence[str]) -> Clustering:
    """Cluster items by their unit (an item without one alone, ``item:<id>``), or by item where the units are too
    few to resample (:data:`MIN_CLUSTERS`, :data:`MAX_CLUSTER_SHARE`)."""
    by_item = [f"item:{item_id}" for item_id in ids]
    labels = [unit or alone for unit, alone in zip(units, by_item)]
    named = sorted(set(kinds) - {ITEM_UNIT})
    sizes = Counter(labels)
    if not named or max(sizes.values()) == 1:  # no unit, or none shared: clustering changes nothing
        return Clustering(labels, "+".join(named) or ITEM_UNIT, None)
    unit, biggest = "+".join(named), max(sizes.values())
    if len(sizes) < MIN_CLUSTERS:
        note = f"{len(sizes)} clusters are too few to resample (fewer than {MIN_CLUSTERS})"
    elif biggest > MAX_CLUSTER_SHARE * len(labels):
        note = f"one {unit} holds {biggest} of the {len(labels)} items"
    else:
        return Clustering(labels, unit, None)
    return Clustering(by_item, ITEM_UNIT, f"resampled by item: {note}")
