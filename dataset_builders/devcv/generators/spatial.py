"""Spatial tasks: Localization, Left/Right and Spatial Details.

Left/Right and Spatial Details come in two constructions (``GeneratorConfig.construction``):

``released`` (default), as the released items are (checked against the SAYCam and Ego4D samples):

- Left/Right: the query is a whole frame; the gold option is a byte copy of it, the two
  distractors one horizontally mirrored copy of it (JPEG, like the frames), twice.
- Spatial Details: the query is a crop of an object from the gold frame itself (JPEG); the options
  are the gold frame and two distractor frames.

Both leak the answer to pixel matching (dataset_builders/devcv/README.md, "The released toolbox"); the shortcut audit
shows it. ``hardened`` builds them so that those shortcuts do not work:

- Left/Right: the query and every option show the object on one plain canvas, the query in one half
  and the options in the other, each at its own random offset. No option is a copy of the query,
  the two mirrored distractors differ from each other, and since an option's object never overlaps
  the query's, pixel-by-pixel comparison with the query carries no left/right information.
- Spatial Details: the query crop comes from another frame than the gold option, is shown at
  another size and, when it was cut from a plain background, on a neutral grey one instead; so it
  never appears pixel for pixel in any option and its background does not point at its frame.

In both, Spatial Details distractor frames are near misses — the same category in another colour,
or the same colour on another category — from scenes that share no object with each other or with
the gold frame (otherwise the odd one out would be the answer), with backgrounds closest to the
gold frame's.
"""

from __future__ import annotations

import math
from collections import defaultdict

from babyvlm.evaluate_metrics.devcv.tasks import LETTERS, QUADRANTS

from . import prompts
from .corpus import identity
from .frames import JPEG_QUALITY
from .imaging import (
    border_colour,
    boxes_overlap,
    canvas,
    crop_object,
    jpeg_bytes,
    mirror,
    mirror_asymmetry,
    object_box,
    on_neutral_backdrop,
    rescale,
)
from .items import ItemImage, ObjectViewGenerator, Skip, TaskGenerator, object_record
from .sampling import AnswerQuota, PositionCycle, interleave_by, place_gold

WINDOW_MIN_SCALE = 0.3
"""Localization crops keep at least this share of the frame's width and height."""
WINDOW_TRIES = 12
QUADRANT_MARGIN = 1.0
"""Pixels the target keeps clear of its quadrant's edges."""
MIN_MIRROR_ASYMMETRY = 0.035
"""Left/Right only uses objects whose mirror image visibly differs (see ``imaging.mirror_asymmetry``)."""
CANVAS_PAD = 0.2
"""Left/Right: free space around the object in each canvas half, as a share of the crop's longer side."""
QUERY_SCALES = ((0.7, 0.85), (1.2, 1.4))
"""Spatial Details: the query is shrunk or enlarged by a factor drawn from one of these ranges."""


def _window_starts(start: float, size: float, window: int, frame: int, far_half: bool) -> tuple[int, int] | None:
    """Integer window offsets placing ``[start, start + size]`` in the near (or far) half of a
    ``window``-long span that stays inside ``[0, frame]``; None when there is none."""
    half = window / 2
    if far_half:
        low, high = start + size + QUADRANT_MARGIN - window, start - QUADRANT_MARGIN - half
    else:
        low, high = start + size + QUADRANT_MARGIN - half, start - QUADRANT_MARGIN
    low, high = math.ceil(max(low, 0)), math.floor(min(high, frame - window))
    return (low, high) if low <= high else None


class LocalizeGenerator(TaskGenerator):
    """A crop of a frame placing one object in a chosen quadrant; no other object of its category shows."""

    def __init__(self, ctx):
        super().__init__(ctx)
        # Which quadrants a target allows is only known once it is tried: assume all are possible.
        self.quadrants = AnswerQuota(ctx.summary.requested, dict.fromkeys(range(len(QUADRANTS)), ctx.summary.requested))

    def candidates(self) -> list:
        return interleave_by(self.ctx.object_views(), key=lambda view: view[1].category, rng=self.rng)

    def build(self, candidate) -> dict:
        scene, obj = candidate
        width, height = scene.recording.width, scene.recording.height
        rivals = [
            object_box(other, width, height, margin=0)
            for other in scene.frame.objects
            if other.category == obj.category and other is not obj
        ]
        windows = {
            quadrant: window
            for quadrant in range(len(QUADRANTS))
            if (window := self._window(scene, obj, quadrant, rivals))
        }
        if not windows:
            raise Skip("target_cannot_be_isolated")
        quadrant = self.quadrants.choose(sorted(windows), self.rng)
        window = windows[quadrant]
        image = ItemImage.png(self.ctx.frames.image(*scene.key).crop(window))
        prompt, answer = prompts.localize(obj.category), LETTERS[quadrant]
        digest = self.ctx.claim([prompt, answer], [image])
        self.quadrants.commit(quadrant)
        x, y, w, h = obj.box
        bbox = [round(x - window[0], 1), round(y - window[1], 1), w, h]
        provenance = {
            **scene.provenance(),
            "object": object_record(obj),
            "window": list(window),
            "quadrant": QUADRANTS[quadrant],
        }
        return self.ctx.row([(prompt, answer)], [image], digest=digest, provenance=provenance, bbox=bbox)

    def _window(self, scene, obj, quadrant: int, rivals) -> tuple[int, int, int, int] | None:
        """A crop window with ``obj`` inside ``quadrant`` (0 top left ... 3 bottom right) and no rival in it."""
        width, height = scene.recording.width, scene.recording.height
        x, y, w, h = obj.box
        for _ in range(WINDOW_TRIES):
            scale = self.rng.uniform(WINDOW_MIN_SCALE, 1.0)
            window_w, window_h = round(scale * width), round(scale * height)
            columns = _window_starts(x, w, window_w, width, far_half=quadrant % 2 == 1)
            rows = _window_starts(y, h, window_h, height, far_half=quadrant >= 2)
            if columns and rows:
                left, top = self.rng.randint(*columns), self.rng.randint(*rows)
                window = (left, top, left + window_w, top + window_h)
                if not any(boxes_overlap(window, rival) for rival in rivals):
                    return window
        return None


class LeftRightGenerator(ObjectViewGenerator):
    """A picture of an object, then three options: the same (gold) and two mirror images (see the module doc)."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.positions = PositionCycle(3, self.rng)

    def build(self, candidate) -> dict:
        scene, obj = candidate
        crop = crop_object(self.ctx.frames.image(*scene.key), obj)
        asymmetry = mirror_asymmetry(crop)
        if asymmetry < MIN_MIRROR_ASYMMETRY:
            raise Skip("mirror_symmetric")
        record = {**scene.provenance(), "object": object_record(obj), "mirror_asymmetry": round(asymmetry, 4)}
        if self.ctx.config.construction == "released":
            return self._released(scene, record)
        return self._hardened(crop, record)

    def _released(self, scene, record: dict) -> dict:
        """The frame, then a byte copy of it (gold) and its mirror image twice."""
        frame = ItemImage.jpeg(self.ctx.frames.jpeg(*scene.key))
        mirrored = ItemImage.jpeg(jpeg_bytes(mirror(self.ctx.frames.image(*scene.key)), JPEG_QUALITY))
        prompt = prompts.leftright(self.ctx.config.variant)
        digest = self.ctx.claim([prompt], [frame, mirrored])
        gold = self.positions.take()
        options = place_gold(frame, [mirrored, mirrored], gold)
        provenance = {
            **record,
            "construction": "released",
            "options": [{"mirrored": option is mirrored} for option in options],
        }
        return self.ctx.row([(prompt, LETTERS[gold])], [frame, *options], digest=digest, provenance=provenance)

    def _hardened(self, crop, record: dict) -> dict:
        pad = max(2, round(CANVAS_PAD * max(crop.size)))
        half_width = crop.width + 2 * pad
        size, fill = (2 * half_width, crop.height + 2 * pad), border_colour(crop)
        span = 2 * pad + 1
        # Distinct offsets, so no two options are the same picture; the query sits in the other half.
        offsets = [divmod(index, span) for index in self.rng.sample(range(span**2), 4)]
        query_half = self.rng.randrange(2)
        halves = [query_half] + [1 - query_half] * 3
        spots = [(half * half_width + dx, dy) for half, (dx, dy) in zip(halves, offsets)]
        pieces = [crop, crop, mirror(crop), mirror(crop)]  # query, gold, two distractors
        images = [ItemImage.png(canvas(size, fill, [(piece, spot)])) for piece, spot in zip(pieces, spots)]
        prompt = prompts.leftright(self.ctx.config.variant)
        digest = self.ctx.claim([prompt], images)
        gold = self.positions.take()
        options = place_gold(1, [2, 3], gold)
        provenance = {
            **record,
            "construction": "hardened",
            "crop_size": list(crop.size),
            "query_at": list(spots[0]),
            "options": [{"at": list(spots[option]), "mirrored": option != 1} for option in options],
        }
        return self.ctx.row(
            [(prompt, LETTERS[gold])],
            [images[0], *(images[option] for option in options)],
            digest=digest,
            provenance=provenance,
        )


class SpatialDetailsGenerator(ObjectViewGenerator):
    """An object crop, then three frames of which exactly one shows that object (see the module doc)."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.positions = PositionCycle(3, self.rng)
        self.scenes_with_instance: dict[tuple, list] = defaultdict(list)
        for scene in ctx.scenes:
            for obj in scene.full_view:
                self.scenes_with_instance[scene.frame.recording, obj.instance_id].append(scene)
        self._backgrounds: dict[tuple, tuple[int, int, int]] = {}
        self._near_misses: dict[tuple, list] = {}

    def near_misses(self, looks: tuple[str, str]) -> list:
        """The scenes without an object of identity ``looks`` but with its category or its colour."""
        if looks not in self._near_misses:
            category, color = looks
            self._near_misses[looks] = [
                scene
                for scene in self.ctx.scenes
                if looks not in scene.identities
                and any(shown.category == category or shown.color == color for shown in scene.frame.objects)
            ]
        return self._near_misses[looks]

    def background(self, scene) -> tuple[int, int, int]:
        if scene.key not in self._backgrounds:
            self._backgrounds[scene.key] = border_colour(self.ctx.frames.image(*scene.key))
        return self._backgrounds[scene.key]

    def build(self, candidate) -> dict:
        scene, obj = candidate
        if self.ctx.config.construction == "released":
            gold_scene = scene  # the query is cut from the gold frame itself
        else:
            others = [
                other
                for other in self.scenes_with_instance[scene.frame.recording, obj.instance_id]
                if other.key != scene.key
            ]
            if not others:
                raise Skip("object_in_one_scene_only")
            gold_scene = self.rng.choice(others)
        near_misses = list(self.near_misses(identity(obj)))
        gold_background = self.background(gold_scene)
        # Shuffled first, so that equally close backgrounds take turns.
        self.rng.shuffle(near_misses)
        near_misses.sort(key=lambda other: sum((a - b) ** 2 for a, b in zip(self.background(other), gold_background)))
        # No two options may show the same objects: two views of one scene would single out the third.
        distractors: list = []
        for other in near_misses:
            if not any(other.shares_objects(chosen) for chosen in [gold_scene, *distractors]):
                distractors.append(other)
                if len(distractors) == 2:
                    break
        else:
            raise Skip("too_few_near_miss_scenes")
        crop = crop_object(self.ctx.frames.image(*scene.key), obj)
        if self.ctx.config.construction == "released":
            query, shown = ItemImage.jpeg(jpeg_bytes(crop, JPEG_QUALITY)), {}
        else:
            factor = self.rng.uniform(*self.rng.choice(QUERY_SCALES))
            isolated = on_neutral_backdrop(crop)
            query = ItemImage.png(rescale(isolated or crop, factor))
            shown = {"scale": round(factor, 4), "neutral_backdrop": isolated is not None}
        frames = {other.key: ItemImage.jpeg(self.ctx.frames.jpeg(*other.key)) for other in [gold_scene, *distractors]}
        prompt = prompts.spatialdetails(self.ctx.config.variant)
        digest = self.ctx.claim([prompt], [query, *frames.values()])
        gold = self.positions.take()
        options = place_gold(gold_scene, distractors, gold)
        provenance = {
            "construction": self.ctx.config.construction,
            "query": {**scene.provenance(), "object": object_record(obj), **shown},
            "options": [{**option.provenance(), "shows_object": option is gold_scene} for option in options],
        }
        return self.ctx.row(
            [(prompt, LETTERS[gold])],
            [query, *(frames[option.key] for option in options)],
            digest=digest,
            provenance=provenance,
        )
