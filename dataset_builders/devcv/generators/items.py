"""What every task generator shares: its seeded context, candidate skipping, content-hash
de-duplication and the conversion of a built item into a DevCV schema row.

A task generator is a :class:`TaskGenerator`: ``candidates()`` lists what items could be built from
(in a balanced order), ``build(candidate)`` builds one row or raises :class:`Skip` with a reason.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from babyvlm.evaluate_metrics.devcv.tasks import DevCVTask

from babyvlm.chat import count_image_blocks, text_to_content

from ...annotations import ObjectBox
from ..release import prompt_choices
from .config import GeneratorConfig
from .corpus import Corpus, Scene, identity
from .frames import FrameStore
from .imaging import png_bytes
from .report import DUPLICATE_CONTENT, Skip, TaskSummary
from .sampling import interleave_by

MIN_OBJECT_PX = 8.0
"""Objects smaller than this (box width or height) are too small to crop into an option image."""


@dataclass(frozen=True)
class ItemImage:
    data: bytes
    extension: str
    """``png`` for drawn images, ``jpg`` for frames kept as extracted."""

    @classmethod
    def png(cls, image) -> ItemImage:
        return cls(png_bytes(image), "png")

    @classmethod
    def jpeg(cls, data: bytes) -> ItemImage:
        return cls(data, "jpg")


def object_record(obj: ObjectBox) -> dict:
    """An annotated object as item provenance records it."""
    return {"instance_id": obj.instance_id, "category": obj.category, "color": obj.color, "box": list(obj.box)}


def content_digest(texts: Sequence[str], images: Sequence[ItemImage]) -> str:
    """SHA-256 of an item's content: its texts and image bytes, in the order given."""
    digest = hashlib.sha256()
    for part in [*(text.encode() for text in texts), *(image.data for image in images)]:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class TaskContext:
    """One task in one split: its recordings' scenes and exits, frames, seeded rng and tally."""

    def __init__(self, task: DevCVTask, split: str, corpus: Corpus, frames: FrameStore, config: GeneratorConfig):
        self.task = task
        self.split = split
        self.corpus = corpus
        self.frames = frames
        self.config = config
        self.rng = random.Random(f"{config.seed}:{task.name}:{split}")
        self.summary = TaskSummary(task.name, split, requested=config.items_per_split.get(split, 0))
        self._seen: set[str] = set()

    @property
    def scenes(self) -> list[Scene]:
        return self.corpus.scenes(self.split)

    def object_views(self) -> list[tuple[Scene, ObjectBox]]:
        """Every ``(scene, object)`` with the object in full view and big enough to crop, once per
        object position: a still object filmed in many scenes would give the same crop each time."""
        views: dict[tuple, tuple[Scene, ObjectBox]] = {}
        for scene in self.scenes:
            for obj in scene.full_view:
                if obj.box[2] >= MIN_OBJECT_PX and obj.box[3] >= MIN_OBJECT_PX:
                    views.setdefault((scene.frame.recording, obj.instance_id, obj.box), (scene, obj))
        return list(views.values())

    def claim(self, texts: Sequence[str], images: Sequence[ItemImage]) -> str:
        """The item's content digest; raises :class:`Skip` when an item with that content was already built.

        Give texts and images in a canonical order (gold option first), so the same content with
        options shuffled differently still counts as a duplicate.
        """
        digest = content_digest(texts, images)
        if digest in self._seen:
            raise Skip(DUPLICATE_CONTENT)
        self._seen.add(digest)
        return digest

    def row(
        self,
        turns: Sequence[tuple[str, str]],
        images: Sequence[ItemImage],
        *,
        digest: str,
        provenance: dict,
        choices: Sequence[str] | None = None,
        labels: Sequence[Sequence[str]] = (),
        bbox: Sequence[float] = (),
        notes: str = "",
    ) -> dict:
        """The schema row of an item made of ``turns`` (released prompt strings with ``<image>``
        placeholders, and gold answers); ``choices`` default to the options the prompt offers."""
        item_id = f"{self.task.name}_{self.split}_{self.summary.written:05d}"
        messages = []
        for prompt, answer in turns:
            messages.append({"role": "user", "content": text_to_content(prompt)})
            messages.append({"role": "assistant", "content": text_to_content(answer)})
        if messages and count_image_blocks(messages) != len(images):
            raise ValueError(f"{item_id}: {count_image_blocks(messages)} image placeholders for {len(images)} images")
        paths = [
            f"images/{self.task.name}/{self.split}/{item_id}_{index}.{image.extension}"
            for index, image in enumerate(images)
        ]
        return {
            "id": item_id,
            "original_id": item_id,
            "task": self.task.name,
            "harness_key": self.task.harness_key,
            "source": self.config.source_name,
            "source_task": self.task.source_names[0],
            "split": self.split,
            "messages": messages,
            "images": [{"bytes": image.data, "path": path} for image, path in zip(images, paths)],
            "answer": [answer for _, answer in turns],
            "choices": list(choices) if choices is not None else prompt_choices(self.task, messages),
            "labels": [list(round_labels) for round_labels in labels],
            "bbox": [float(value) for value in bbox],
            "notes": notes,
            "gif": "",
            "image_paths": paths,
            "extra": "{}",
            "provenance": json.dumps({"content_sha256": digest, **provenance}, sort_keys=True),
        }


class TaskGenerator:
    """Base of the per-task generators: ``candidates()`` is called once, then ``build`` on each
    candidate in turn until enough items are written."""

    def __init__(self, ctx: TaskContext):
        self.ctx = ctx
        self.rng = ctx.rng

    def candidates(self) -> list:
        """What items can be built from, in the order to try them."""
        raise NotImplementedError

    def build(self, candidate) -> dict:
        """The schema row of one item, or :class:`Skip` with the reason none can be built."""
        raise NotImplementedError


class ObjectViewGenerator(TaskGenerator):
    """Candidates are the objects in full view (``ctx.object_views()``), tried one identity at a time."""

    def __init__(self, ctx: TaskContext):
        super().__init__(ctx)
        self.views = ctx.object_views()

    def candidates(self) -> list:
        return interleave_by(self.views, key=lambda view: identity(view[1]), rng=self.rng)
