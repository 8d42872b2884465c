"""The annotated corpus as the generators see it: recordings assigned to splits, and the distinct
views (scenes) each split offers.

A *scene* is one frame per distinct object layout of a recording: frames whose objects and boxes
are all identical (a still scene filmed for seconds) collapse into one, so items are not built
from near-copies of the same picture. An object is *in full view* when its box keeps clear of the
frame border and of every other object's box: the annotations only give the visible part of a
box, so an object touching the border may be cut off, and one overlapping another may be partly
hidden. Items only ask about objects in full view.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from ...annotations import ExitEvent, FrameAnnotation, ObjectBox, RecordingInfo, WorldAnnotations
from .config import SPLITS

EDGE_PX = 1.0
"""An object whose box comes closer than this to the frame border may be cut off."""

Identity = tuple[str, str]
"""What an object looks like: ``(category, color)``. Objects of one identity look alike."""


def identity(obj: ObjectBox) -> Identity:
    return obj.category, obj.color


@dataclass(frozen=True)
class Scene:
    """One distinct view of a recording: its frame annotation and the recording it belongs to."""

    recording: RecordingInfo
    frame: FrameAnnotation

    @property
    def key(self) -> tuple[str, int]:
        return self.frame.recording, self.frame.frame_index

    def in_full_view(self, obj: ObjectBox) -> bool:
        x, y, w, h = obj.box
        return (
            x >= EDGE_PX
            and y >= EDGE_PX
            and x + w <= self.recording.width - EDGE_PX
            and y + h <= self.recording.height - EDGE_PX
        )

    def overlaps_another(self, obj: ObjectBox) -> bool:
        """Whether another object's box meets this one's: one of them may hide part of the other."""
        x, y, w, h = obj.box
        return any(
            other is not obj and x < ox + ow and ox < x + w and y < oy + oh and oy < y + h
            for other in self.frame.objects
            for ox, oy, ow, oh in [other.box]
        )

    @cached_property
    def full_view(self) -> tuple[ObjectBox, ...]:
        """The objects in full view: clear of the border and of every other object."""
        return tuple(obj for obj in self.frame.objects if self.in_full_view(obj) and not self.overlaps_another(obj))

    @cached_property
    def countable(self) -> dict[str, tuple[ObjectBox, ...]]:
        """Category -> its objects, for the categories all of whose objects are in full view (so they can be
        counted)."""
        groups: dict[str, list[ObjectBox]] = defaultdict(list)
        for obj in self.frame.objects:
            groups[obj.category].append(obj)
        return {
            category: tuple(objs)
            for category, objs in sorted(groups.items())
            if all(obj in self.full_view for obj in objs)
        }

    @cached_property
    def identities(self) -> frozenset[Identity]:
        """Every identity with at least a part on screen."""
        return frozenset(identity(obj) for obj in self.frame.objects)

    def shares_objects(self, other: Scene) -> bool:
        """Whether two scenes show some of the same objects (same recording, same instance)."""
        return self.frame.recording == other.frame.recording and not {
            o.instance_id for o in self.frame.objects
        }.isdisjoint(o.instance_id for o in other.frame.objects)

    def provenance(self) -> dict:
        """Where the scene comes from, for item provenance."""
        return {"recording": self.frame.recording, "frame_index": self.frame.frame_index, "time_ms": self.frame.time_ms}


def assign_splits(recordings: list[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Recording -> split: a seeded shuffle cut by ``fractions`` (largest remainders), at least one
    recording for every split with a positive fraction. Raises ``ValueError`` with too few recordings."""
    wanted = [split for split in SPLITS if fractions.get(split, 0) > 0]
    if len(recordings) < len(wanted):
        raise ValueError(
            f"{len(wanted)} splits ({', '.join(wanted)}) need at least {len(wanted)} recordings, "
            f"the annotations have {len(recordings)}"
        )
    total = sum(fractions[split] for split in wanted)
    shares = {split: fractions[split] / total * len(recordings) for split in wanted}
    sizes = {split: max(1, int(share)) for split, share in shares.items()}
    # Hand out what rounding down left over, largest remainder first; take back from the largest split if the
    # minimum of one overshot.
    for split in sorted(wanted, key=lambda s: shares[s] - int(shares[s]), reverse=True):
        if sum(sizes.values()) < len(recordings):
            sizes[split] += 1
    while sum(sizes.values()) > len(recordings):
        sizes[max(wanted, key=lambda s: sizes[s])] -= 1
    order = sorted(recordings)
    random.Random(f"{seed}:splits").shuffle(order)
    assignment, start = {}, 0
    for split in wanted:
        assignment.update(dict.fromkeys(order[start : start + sizes[split]], split))
        start += sizes[split]
    return assignment


@dataclass
class SceneTally:
    """How the frame annotations were used: every frame is a scene, a repeat of one, or empty."""

    scenes: int = 0
    same_layout_as_a_scene: int = 0
    no_objects: int = 0


def select_scenes(world: WorldAnnotations) -> tuple[dict[str, list[Scene]], SceneTally]:
    """Recording -> its scenes in frame order (the middle frame of each run of identical layouts)."""
    tally = SceneTally()
    layouts: dict[str, dict[tuple, list[FrameAnnotation]]] = defaultdict(lambda: defaultdict(list))
    for frame in world.frames:
        if not frame.objects:
            tally.no_objects += 1
            continue
        layout = tuple(sorted((obj.instance_id, obj.category, obj.color, obj.box) for obj in frame.objects))
        layouts[frame.recording][layout].append(frame)
    scenes: dict[str, list[Scene]] = {}
    for recording, groups in layouts.items():
        chosen = []
        for frames in groups.values():
            frames.sort(key=lambda frame: frame.frame_index)
            chosen.append(frames[len(frames) // 2])
            tally.scenes += 1
            tally.same_layout_as_a_scene += len(frames) - 1
        info = world.recordings[recording]
        scenes[recording] = [Scene(info, frame) for frame in sorted(chosen, key=lambda frame: frame.frame_index)]
    return scenes, tally


class Corpus:
    """The annotations split by recording, with each split's scenes and exit clips."""

    def __init__(self, world: WorldAnnotations, split_fractions: Mapping[str, float], seed: int):
        self.world = world
        self.split_of = assign_splits(sorted(world.recordings), split_fractions, seed)
        self.scenes_by_recording, self.scene_tally = select_scenes(world)
        self._frames_by_recording: dict[str, list[FrameAnnotation]] = defaultdict(list)
        for frame in sorted(world.frames, key=lambda frame: (frame.recording, frame.frame_index)):
            self._frames_by_recording[frame.recording].append(frame)

    def recordings(self, split: str) -> list[str]:
        return sorted(name for name, assigned in self.split_of.items() if assigned == split)

    def scenes(self, split: str) -> list[Scene]:
        return [scene for recording in self.recordings(split) for scene in self.scenes_by_recording.get(recording, [])]

    def exits(self, split: str) -> list[ExitEvent]:
        members = set(self.recordings(split))
        return [event for event in self.world.exits if event.recording in members]

    def clip_frames(self, event: ExitEvent) -> list[FrameAnnotation]:
        """The annotated frames of an exit clip, from its start to the first frame without the object."""
        return [
            frame
            for frame in self._frames_by_recording[event.recording]
            if event.start_ms <= frame.time_ms <= event.end_ms
        ]
