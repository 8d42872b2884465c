"""Number tasks: Object Counting, Subitizing, Who Has More (naturalistic and synthetic).

A category is only counted in a frame where every object of it is in full view, so the answer is
exactly what the picture shows.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from babyvlm.evaluate_metrics.devcv.tasks import LETTERS

from ...annotations import ObjectBox
from . import prompts
from .corpus import Scene
from .imaging import canvas, crop_object, rescale
from .items import ItemImage, ObjectViewGenerator, Skip, TaskGenerator, object_record
from .sampling import AnswerQuota, PositionCycle, interleave_by, place_gold
from .vocabulary import pluralize

SUBITIZE_MAX = 4
SYNTHETIC_GRID = (4, 3)
"""Who Has More (synthetic): copies go into distinct cells of this grid, so at most 12 per image."""
SYNTHETIC_BACKGROUND = (0, 0, 0)
SYNTHETIC_CELL_FILL = 0.8
"""A pasted copy spans at most this share of its cell."""


def countable_groups(scenes: list[Scene]) -> list[tuple[Scene, str, tuple[ObjectBox, ...]]]:
    """``(scene, category, its objects)`` for every countable category, once per arrangement of those
    objects: scenes that differ only in other objects would ask the same question again."""
    groups: dict[tuple, tuple] = {}
    for scene in scenes:
        for category, objects in scene.countable.items():
            arrangement = (
                scene.frame.recording,
                category,
                tuple(sorted((obj.instance_id, obj.box) for obj in objects)),
            )
            groups.setdefault(arrangement, (scene, category, objects))
    return list(groups.values())


class CountGenerator(TaskGenerator):
    """One frame and a category in it; the answer is how many objects of it the frame shows."""

    max_count: int | None = None

    def prompt(self, category: str) -> str:
        return prompts.count(pluralize(category))

    def candidates(self) -> list:
        pool = [
            (scene, category, objects)
            for scene, category, objects in countable_groups(self.ctx.scenes)
            if self.max_count is None or len(objects) <= self.max_count
        ]
        self.quota = AnswerQuota(self.ctx.summary.requested, Counter(len(objects) for _, _, objects in pool))
        return interleave_by(pool, key=lambda candidate: len(candidate[2]), rng=self.rng)

    def build(self, candidate) -> dict:
        scene, category, objects = candidate
        self.quota.check(len(objects))
        frame = ItemImage.jpeg(self.ctx.frames.jpeg(*scene.key))
        prompt, answer = self.prompt(category), str(len(objects))
        digest = self.ctx.claim([prompt, answer], [frame])
        self.quota.commit(len(objects))
        provenance = {**scene.provenance(), "category": category, "objects": [object_record(obj) for obj in objects]}
        return self.ctx.row([(prompt, answer)], [frame], digest=digest, provenance=provenance)


class SubitizeGenerator(CountGenerator):
    """Counting with 1 to 4 objects, in the BabyView wording."""

    max_count = SUBITIZE_MAX

    def prompt(self, category: str) -> str:
        return prompts.subitize(category)


class CompareRealGenerator(TaskGenerator):
    """Two frames showing different numbers of one category; the answer is the one with more."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.positions = PositionCycle(2, self.rng)
        self.by_category: dict[str, list] = defaultdict(list)

    def candidates(self) -> list:
        pool = [(scene, category, len(objects)) for scene, category, objects in countable_groups(self.ctx.scenes)]
        for candidate in pool:
            self.by_category[candidate[1]].append(candidate)
        return interleave_by(pool, key=lambda candidate: candidate[1], rng=self.rng)

    def build(self, candidate) -> dict:
        _, category, count = candidate
        partners = [other for other in self.by_category[category] if other[2] != count]
        if not partners:
            raise Skip("no_scene_with_another_count")
        pair = sorted([candidate, self.rng.choice(partners)], key=lambda option: -option[2])
        more, fewer = [(scene, n, ItemImage.jpeg(self.ctx.frames.jpeg(*scene.key))) for scene, _, n in pair]
        prompt = prompts.compare_real(pluralize(category))
        digest = self.ctx.claim([prompt], [more[2], fewer[2]])
        gold = self.positions.take()
        options = place_gold(more, [fewer], gold)
        notes = f"first should have {options[0][1]} second should have {options[1][1]}"
        provenance = {"category": category, "options": [{**scene.provenance(), "count": n} for scene, n, _ in options]}
        return self.ctx.row(
            [(prompt, LETTERS[gold])],
            [image for _, _, image in options],
            digest=digest,
            provenance=provenance,
            notes=notes,
        )


class CompareSyntheticGenerator(ObjectViewGenerator):
    """One object crop pasted different numbers of times on two plain canvases."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.positions = PositionCycle(2, self.rng)

    def build(self, candidate) -> dict:
        scene, obj = candidate
        crop = crop_object(self.ctx.frames.image(*scene.key), obj)
        columns, rows = SYNTHETIC_GRID
        more, fewer = sorted(self.rng.sample(range(1, columns * rows + 1), 2), reverse=True)
        size = (scene.recording.width, scene.recording.height)
        cell = (size[0] // columns, size[1] // rows)
        piece = rescale(crop, SYNTHETIC_CELL_FILL * min(cell[0] / crop.width, cell[1] / crop.height))
        drawn = {count: self._scatter(piece, count, size, cell) for count in (more, fewer)}
        images = {count: ItemImage.png(image) for count, (image, _) in drawn.items()}
        prompt = prompts.compare_synthetic(pluralize(obj.category))
        digest = self.ctx.claim([prompt], [images[more], images[fewer]])
        gold = self.positions.take()
        counts = place_gold(more, [fewer], gold)
        provenance = {
            **scene.provenance(),
            "object": object_record(obj),
            "copy_size": list(piece.size),
            "options": [{"count": count, "positions": drawn[count][1]} for count in counts],
        }
        return self.ctx.row(
            [(prompt, LETTERS[gold])], [images[count] for count in counts], digest=digest, provenance=provenance
        )

    def _scatter(self, piece, count: int, size: tuple[int, int], cell: tuple[int, int]):
        """``count`` copies of ``piece`` in distinct random grid cells, each at a random spot in its cell."""
        columns = SYNTHETIC_GRID[0]
        positions = []
        for index in sorted(self.rng.sample(range(columns * SYNTHETIC_GRID[1]), count)):
            column, row = index % columns, index // columns
            x = column * cell[0] + self.rng.randint(0, cell[0] - piece.width)
            y = row * cell[1] + self.rng.randint(0, cell[1] - piece.height)
            positions.append([x, y])
        return canvas(size, SYNTHETIC_BACKGROUND, [(piece, tuple(position)) for position in positions]), positions
