"""Score one DevCV item of any task from the model's raw output: the task registry picks the parser
and the metric. Shared by the evaluate module, the evaluation runner and the lmms-eval plugin, so
all three score an item the same way.

>>> score_item("picture_vocabulary", "(c) the third image", "C").scores
{'acc': 1.0}
>>> score_item("vdr_open", "top", "top right").scores
{'acc_exact': 0.0, 'acc_adjacent': 1.0}
>>> score_item("count", "I see many", "4")
ScoredItem(parsed=None, scores={'acc': 0.0}, unparsable=1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from babyvlm.dataset_builders.devcv.tasks import DevCVTask, canonical_task

from .parsing import parse_answer
from .scores import accuracy_item, lwl_item, memory_item, vdr_item


@dataclass
class ScoredItem:
    parsed: object
    """The parsed prediction (a list of them for Memory; ``None`` where unparsable or not applicable)."""
    scores: dict[str, float]
    unparsable: int
    """How many of the item's answers held no parsable answer (counted wrong)."""


def parse_gold(task: DevCVTask, gold: str):
    """Parse a gold answer with the task's parser; ``ValueError`` when the data itself is malformed."""
    parsed = parse_answer(task.answer_type, gold)
    if parsed is None:
        raise ValueError(f"{task.name}: gold answer {gold!r} is not a valid {task.answer_type} answer")
    return parsed


def score_item(task: str | DevCVTask, output, gold, labels: Sequence[Sequence[str]] = ()) -> ScoredItem:
    """Score one item.

    ``output``/``gold`` are the generated text and gold answer string; for Memory, the per-round
    lists (with ``labels``, the per-round option keys, see :func:`.scores.memory_item`); for Looking
    While Listening, ``output`` is the 2×2 loss matrix and ``gold`` is unused.
    """
    task = task if isinstance(task, DevCVTask) else canonical_task(task)
    if task.answer_type == "loglikelihood":
        return ScoredItem(parsed=None, scores=lwl_item(output), unparsable=0)
    if task.name == "memory":
        parsed = [parse_answer(task.answer_type, text) for text in output]
        golds = [parse_gold(task, text) for text in gold]
        return ScoredItem(parsed, memory_item(parsed, golds, labels), unparsable=parsed.count(None))
    parsed = parse_answer(task.answer_type, output)
    gold = parse_gold(task, gold)
    scores = vdr_item(parsed, gold) if task.answer_type == "direction" else accuracy_item(parsed, gold)
    return ScoredItem(parsed, scores, unparsable=int(parsed is None))
