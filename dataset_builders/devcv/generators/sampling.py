"""Seeded choices that keep generated answers balanced.

- :class:`PositionCycle`: where the gold option goes. Every block of ``n`` accepted items puts it
  at each position once, in a shuffled order, so no position is favoured.
- :func:`interleave_by`: the order candidates are tried in, round-robin over answer values
  (counts, directions, words ...), so the answers come out as even as the corpus allows.
- :class:`AnswerQuota`: a cap on the items per answer value, and for answers a candidate only
  allows some of (Localization quadrants), the least used allowed value.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from itertools import zip_longest
from typing import TypeVar

from .report import ANSWER_QUOTA_FULL, Skip

T = TypeVar("T")
_GAP = object()


class PositionCycle:
    """Balanced positions in ``range(n)``; call :meth:`take` only for an item that is kept."""

    def __init__(self, n: int, rng: random.Random):
        self.n = n
        self.rng = rng
        self._block: list[int] = []

    def take(self) -> int:
        if not self._block:
            self._block = list(range(self.n))
            self.rng.shuffle(self._block)
        return self._block.pop()


def interleave_by(items: Iterable[T], key: Callable[[T], Hashable], rng: random.Random) -> list[T]:
    """``items`` shuffled within each ``key`` group, then taken one group at a time, round-robin."""
    groups: dict[Hashable, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    ordered_groups = [groups[value] for value in sorted(groups, key=repr)]
    rng.shuffle(ordered_groups)
    for group in ordered_groups:
        rng.shuffle(group)
    return [item for layer in zip_longest(*ordered_groups, fillvalue=_GAP) for item in layer if item is not _GAP]


MAX_SHARE_OVER_FAIR = 1.5
"""No answer value may take more than this many times its fair share (1 / number of values) of the items."""


class AnswerQuota:
    """A cap on the items per answer value, so no answer dominates where the corpus offers many more
    candidates for some answers (small counts, some exit directions).

    The cap starts at an even split of ``limit`` and is lowered until the most frequent answer would
    take at most :data:`MAX_SHARE_OVER_FAIR` times its fair share of what the candidates allow.
    """

    def __init__(self, limit: int, available: Mapping[Hashable, int]):
        values = len(available)
        self.cap = math.ceil(limit / values) if values else 0
        while self.cap > 1 and self.cap * values > MAX_SHARE_OVER_FAIR * sum(
            min(count, self.cap) for count in available.values()
        ):
            self.cap -= 1
        self.counts: Counter = Counter()

    def check(self, value: Hashable) -> None:
        """Raise :class:`~.report.Skip` when ``value`` already has its share of the items."""
        if self.counts[value] >= self.cap:
            raise Skip(ANSWER_QUOTA_FULL)

    def choose(self, allowed: Sequence[Hashable], rng: random.Random) -> Hashable:
        """The least used of the ``allowed`` values still under quota (ties at random); raises
        :class:`~.report.Skip` when all are full. Call :meth:`commit` once the item is kept."""
        open_values = [value for value in allowed if self.counts[value] < self.cap]
        if not open_values:
            raise Skip(ANSWER_QUOTA_FULL)
        fewest = min(self.counts[value] for value in open_values)
        return rng.choice([value for value in open_values if self.counts[value] == fewest])

    def commit(self, value: Hashable) -> None:
        self.counts[value] += 1


def place_gold(gold: T, distractors: Sequence[T], position: int) -> list[T]:
    """The options with ``gold`` at ``position`` and the distractors in their order around it."""
    options = list(distractors)
    options.insert(position, gold)
    return options
