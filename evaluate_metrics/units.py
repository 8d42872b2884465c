"""The unit DevCV items share, for clustered intervals and tests (evaluate_metrics/README.md, "Intervals and tests").

Items cut from one recording, episode or video share objects, scenes and the camera: their answers are not
independent, so the bootstrap resamples whole units. Each item's units come from what it records about itself,
first its ``provenance`` (generated items name the recordings of their frames), else its id where a release
spells the unit in it (:data:`ID_UNITS`); an item that records none is its own unit, and the summary says so.
An item drawing frames from several recordings joins them: items linked through any shared unit form one
cluster (:func:`clusters`).

>>> item_units({"id": "Y_20190426_1412_01_clip_010", "source": "saycam", "provenance": "{}"})
('recording', ['Y_20190426_1412_01'])
>>> item_units({"id": "c8bf04e6-74f2-4a5e-8c26-615246886744/7200_7332_lamp", "source": "ego4d"})
('video', ['c8bf04e6-74f2-4a5e-8c26-615246886744'])
>>> item_units({"id": "count_7", "source": "toyworld", "provenance": '{"recording": "room_3", "frame_index": 4}'})
('recording', ['room_3'])
>>> item_units({"id": "count_131", "source": "saycam", "provenance": "{}"})
('item', [])
>>> clusters([["a"], ["b"], ["a", "c"], ["c"], []], ["i1", "i2", "i3", "i4", "i5"])
['a', 'b', 'a', 'a', 'item:i5']
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from babyvlm.item_ids import released_id

PROVENANCE_UNIT = "recording"
"""The key under which generated items' provenance names the recording of each frame (at any depth)."""
ID_UNITS: dict[str, tuple[str, re.Pattern]] = {
    # SAYCam VDR clips: <child>_<yyyymmdd>_<hhmm>_<part>_clip_<k>, the recording's name before "_clip_".
    "saycam": ("recording", re.compile(r"^(?P<unit>[A-Z]_\d{8}_\d{4}_\d{2})_clip_\d+$")),
    # Ego4D VDR clips: <video uuid>/<start>_<end>_<object>.
    "ego4d": ("video", re.compile(r"^(?P<unit>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/")),
}
"""Per source: the unit its released ids spell, and where. Released ids of the other tasks carry no unit."""
ITEM_UNIT = "item"
"""The unit of an item that records none: itself."""


def _provenance_units(value) -> list[str]:
    if isinstance(value, dict):
        found = [str(value[PROVENANCE_UNIT])] if PROVENANCE_UNIT in value else []
        return found + [
            unit for key, inner in value.items() if key != PROVENANCE_UNIT for unit in _provenance_units(inner)
        ]
    if isinstance(value, list):
        return [unit for inner in value for unit in _provenance_units(inner)]
    return []


def item_units(record: dict) -> tuple[str, list[str]]:
    """The kind of unit an item records and its unit keys (``("item", [])`` when it records none)."""
    try:
        provenance = json.loads(record.get("provenance") or "{}")
    except json.JSONDecodeError:
        provenance = {}
    units = sorted(set(_provenance_units(provenance)))
    if units:
        return PROVENANCE_UNIT, units
    kind, pattern = ID_UNITS.get(record.get("source") or "", (None, None))
    match = pattern.match(released_id(record)) if pattern else None
    return (kind, [match["unit"]]) if match else (ITEM_UNIT, [])


def clusters(units: Sequence[Sequence[str]], ids: Sequence[str]) -> list[str]:
    """One cluster label per item: items linked by a shared unit (directly or through others) share a label;
    an item without units is alone (``item:<id>``)."""
    parent: dict[str, str] = {}

    def root(unit: str) -> str:
        while parent.setdefault(unit, unit) != unit:
            parent[unit] = parent[parent[unit]]
            unit = parent[unit]
        return unit

    for shared in units:
        for unit in shared:
            parent[root(unit)] = root(shared[0])
    # The smallest unit of a cluster names it, whatever order the items came in.
    names: dict[str, str] = {}
    for unit in parent:
        names[root(unit)] = min(names.get(root(unit), unit), unit)
    return [names[root(shared[0])] if shared else f"item:{item_id}" for shared, item_id in zip(units, ids)]
