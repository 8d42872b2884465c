"""Visual Delayed Response: 5–9 frames spread evenly over a clip in which an object leaves the frame.

A clip runs from the object at rest to the first frame it is gone (see
``babyvlm.dataset_builders.annotations``). Each exit clip is used once before any is used again
with another number of frames, and clips are tried one answer at a time so answers stay balanced.
The binary form asks between the side the object leaves through and the opposite side; for a
diagonal exit (``top left``) it asks about one of its two sides, alternating between uses.
"""

from __future__ import annotations

from collections import Counter

from . import prompts
from .items import ItemImage, Skip, TaskGenerator
from .sampling import AnswerQuota, PositionCycle, interleave_by, place_gold

FRAME_COUNTS = tuple(range(5, 10))
OPPOSITE_SIDE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


class _VDRGenerator(TaskGenerator):
    """Candidates are ``(exit clip, number of frames, use)``; subclasses say what the answer is."""

    def answer(self, event, use: int) -> str:
        """The gold answer of the ``use``-th item built from ``event``."""
        raise NotImplementedError

    def candidates(self) -> list:
        exits = self.ctx.corpus.exits(self.ctx.split)
        counts = {index: self.rng.sample(FRAME_COUNTS, len(FRAME_COUNTS)) for index in range(len(exits))}
        ordered = []
        for use in range(len(FRAME_COUNTS)):
            uses = [(event, counts[index][use], use) for index, event in enumerate(exits)]
            ordered += interleave_by(uses, key=lambda candidate: self.answer(candidate[0], candidate[2]), rng=self.rng)
        self.quota = AnswerQuota(
            self.ctx.summary.requested, Counter(self.answer(event, use) for event, _, use in ordered)
        )
        return ordered

    def clip(self, event, count: int) -> tuple[list[int], list[ItemImage]]:
        """``count`` frame indices spread evenly from the clip's first to its last frame, and their images."""
        frames = self.ctx.corpus.clip_frames(event)
        if len(frames) < count:
            raise Skip("clip_shorter_than_frame_count")
        chosen = [frames[round(k * (len(frames) - 1) / (count - 1))].frame_index for k in range(count)]
        return chosen, [ItemImage.jpeg(self.ctx.frames.jpeg(event.recording, index)) for index in chosen]

    @staticmethod
    def provenance(event, frame_indices: list[int]) -> dict:
        return {
            "recording": event.recording,
            "instance_id": event.instance_id,
            "category": event.category,
            "color": event.color,
            "direction": event.direction,
            "start_ms": event.start_ms,
            "end_ms": event.end_ms,
            "frame_indices": frame_indices,
        }


class VDROpenGenerator(_VDRGenerator):
    def answer(self, event, use: int) -> str:
        return event.direction

    def build(self, candidate) -> dict:
        event, count, _ = candidate
        self.quota.check(event.direction)
        frame_indices, images = self.clip(event, count)
        prompt = prompts.vdr_open(count, event.category)
        digest = self.ctx.claim([prompt, event.direction], images)
        self.quota.commit(event.direction)
        return self.ctx.row(
            [(prompt, event.direction)], images, digest=digest, provenance=self.provenance(event, frame_indices)
        )


class VDRBinaryGenerator(_VDRGenerator):
    def __init__(self, ctx):
        super().__init__(ctx)
        self.positions = PositionCycle(2, self.rng)

    def answer(self, event, use: int) -> str:
        sides = event.direction.split()
        return sides[use % len(sides)]

    def build(self, candidate) -> dict:
        event, count, use = candidate
        side = self.answer(event, use)
        self.quota.check(side)
        frame_indices, images = self.clip(event, count)
        digest = self.ctx.claim([event.category, side, OPPOSITE_SIDE[side]], images)
        self.quota.commit(side)
        first, second = place_gold(side, [OPPOSITE_SIDE[side]], self.positions.take())
        prompt = prompts.vdr_binary(count, event.category, first, second)
        provenance = {**self.provenance(event, frame_indices), "asked_sides": [first, second]}
        return self.ctx.row([(prompt, side)], images, digest=digest, provenance=provenance)
