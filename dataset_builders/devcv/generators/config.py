"""What to generate: tasks, splits and their sizes, seed, prompt variant, vocabulary resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from babyvlm.evaluate_metrics.devcv.tasks import TASKS, canonical_task, check_prompt_variant

from .vocabulary import DistractorPolicy

SPLITS = ("train", "validation", "test")
DEFAULT_SPLIT_FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}
DEFAULT_ITEMS_PER_SPLIT = 200
CONSTRUCTIONS = ("released", "hardened")
"""How Left/Right and Spatial Details items are built (see :mod:`.spatial`): ``released`` as the
released items are (their pixel shortcuts included), ``hardened`` so those shortcuts do not work."""
DEFAULT_TRAIN_TASKS = tuple(name for name, task in TASKS.items() if task.has_train_split)
"""As in the paper, Looking While Listening and Subitizing are held out: test split only."""


def _canonical_names(names, what: str) -> tuple[str, ...]:
    resolved = []
    for name in names:
        try:
            resolved.append(canonical_task(name).name)
        except KeyError as error:
            raise ValueError(f"{what}: {error.args[0]}") from None
    return tuple(dict.fromkeys(resolved))


@dataclass(frozen=True)
class GeneratorConfig:
    """Generation settings; the same config and annotations give byte-identical output."""

    tasks: tuple[str, ...] = tuple(TASKS)
    seed: int = 0
    variant: str = "saycam"
    """Prompt wording: ``saycam`` or ``ego4d`` (see :mod:`.prompts`)."""
    construction: str = "released"
    """Left/Right and Spatial Details: ``released`` (default) or ``hardened`` (:data:`CONSTRUCTIONS`)."""
    items_per_split: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, DEFAULT_ITEMS_PER_SPLIT))
    """At most this many items per task in each split (fewer when the annotations run out)."""
    train_tasks: tuple[str, ...] = DEFAULT_TRAIN_TASKS
    """Tasks that get train and validation splits; every other task is test-only."""
    split_fractions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLIT_FRACTIONS))
    """Share of the recordings in each split (a recording belongs to exactly one split)."""
    source_name: str | None = None
    """The ``source`` column (``toyworld``, ``babyview``, ``saycam`` ...); None: inferred by
    :func:`~.generate.generate_devcv`."""
    cdi_words: frozenset[str] | None = None
    """Picture Vocabulary only uses categories in this word list when given (the MacArthur-Bates CDI)."""
    distractors: DistractorPolicy = field(default_factory=DistractorPolicy)
    children: tuple[str, ...] | None = None
    """Only the recordings of these children feed items (a held-out child's, to measure generalisation across
    children); None: every child's."""

    def __post_init__(self):
        object.__setattr__(self, "tasks", _canonical_names(self.tasks, "tasks"))
        object.__setattr__(self, "train_tasks", _canonical_names(self.train_tasks, "train tasks"))
        check_prompt_variant(self.variant)
        if self.children is not None:
            if not self.children:
                raise ValueError("children: name at least one child, or None for every child")
            object.__setattr__(self, "children", tuple(sorted(set(self.children))))
        if self.construction not in CONSTRUCTIONS:
            raise ValueError(f"unknown construction {self.construction!r}; choose one of {', '.join(CONSTRUCTIONS)}")
        if not self.tasks:
            raise ValueError("no task to generate")
        for mapping, what in ((self.items_per_split, "items per split"), (self.split_fractions, "split fractions")):
            unknown = set(mapping) - set(SPLITS)
            if unknown:
                raise ValueError(f"{what}: unknown split(s) {sorted(unknown)}; splits are {', '.join(SPLITS)}")
            if any(value < 0 for value in mapping.values()):
                raise ValueError(f"{what} must not be negative, got {dict(mapping)}")
        if not sum(self.split_fractions.values()) > 0:
            raise ValueError(f"split fractions must not all be zero, got {dict(self.split_fractions)}")

    def splits_for(self, task: str) -> tuple[str, ...]:
        """The splits ``task`` gets items in: all three for train tasks, else only ``test``."""
        splits = SPLITS if task in self.train_tasks else ("test",)
        return tuple(
            split
            for split in splits
            if self.items_per_split.get(split, 0) > 0 and self.split_fractions.get(split, 0) > 0
        )
