"""Score one DevCV item of any task from the model's raw output: the task registry picks the parser
and the metric. Shared by the evaluate module, the evaluation runner and the lmms-eval plugin, so
all three score an item the same way.

``scores`` are the official metrics (the leaderboard's); ``extra_scores`` the deliberate extras, each
under its own name (``acc_lenient`` for counting, ``acc_exact_lenient`` / ``acc_adjacent_lenient`` for
VDR), never a primary metric.

>>> score_item("picture_vocabulary", "(c) the third image", "C").scores
{'acc': 1.0}
>>> scored = score_item("vdr_open", "Top.", "top right")
>>> scored.scores, scored.extra_scores
({'acc_exact': 0.0, 'acc_adjacent': 0.0}, {'acc_exact_lenient': 0.0, 'acc_adjacent_lenient': 1.0})
>>> score_item("count", "twelve cups", "12")
ScoredItem(parsed=None, scores={'acc': 0.0}, unparsable=1, extra_scores={'acc_lenient': 1.0})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .parsing import LENIENT_PARSERS, parse_answer
from .scores import accuracy_item, lwl_item, memory_item, vdr_item
from .tasks import DIALOGUE, LOGLIKELIHOOD, DevCVTask, canonical_task


@dataclass
class ScoredItem:
    parsed: object
    """The officially parsed prediction (a list of them for Memory; ``None`` where unparsable or not applicable)."""
    scores: dict[str, float]
    unparsable: int
    """How many of the item's answers held no valid answer for the official parser (counted wrong)."""
    extra_scores: dict[str, float] = field(default_factory=dict)
    """The task's extra metrics (lenient parsing), reported beside the official ones."""


def parse_gold(task: DevCVTask, gold: str):
    """Parse a gold answer with the task's official parser, as the harness does; ``ValueError`` when
    the data itself is malformed."""
    parsed = parse_answer(task.answer_type, gold)
    if parsed is None:
        raise ValueError(f"{task.name}: gold answer {gold!r} is not a valid {task.answer_type} answer")
    return parsed


def memory_gold(task: DevCVTask, gold: str) -> str:
    # utils.py `calc_memory_task_accuracy`: the letter of the gold turn's last word.
    words = gold.split()
    return parse_gold(task, words[-1] if words else gold)


def check_gold_answers(task: DevCVTask, answers: Sequence[str]) -> None:
    """``ValueError`` unless an item's gold answers are valid answers of ``task`` for its official parser: one
    answer, or one per round of a dialogue (read as the harness reads Memory's); continuation tasks have none to
    check. (A count of "many" or a localisation letter "E" could never be scored correct.)"""
    if task.protocol == LOGLIKELIHOOD:
        return
    if not answers:
        raise ValueError(f"{task.name}: no gold answer")
    read = memory_gold if task.protocol == DIALOGUE else parse_gold
    for answer in answers:
        read(task, answer)


def _answer_scores(task: DevCVTask, parsed, gold) -> dict[str, float]:
    return vdr_item(parsed, gold) if task.answer_type == "direction" else accuracy_item(parsed, gold)


def _lenient_scores(task: DevCVTask, output: str, gold) -> dict[str, float]:
    parser = LENIENT_PARSERS.get(task.answer_type)
    if parser is None:
        return {}
    return {f"{metric}_lenient": value for metric, value in _answer_scores(task, parser(output), gold).items()}


def score_item(task: str | DevCVTask, output, gold, labels: Sequence[Sequence[str]] = ()) -> ScoredItem:
    """Score one item.

    ``output``/``gold`` are the generated text and gold answer string; for a dialogue task (Memory), the
    per-round lists (with ``labels``, the per-round object keys, see :func:`.scores.memory_item`); for a
    log-likelihood task (Looking While Listening), ``output`` is the 2×2 loss matrix and ``gold`` is unused.
    """
    task = task if isinstance(task, DevCVTask) else canonical_task(task)
    if task.protocol == LOGLIKELIHOOD:
        return ScoredItem(parsed=None, scores=lwl_item(output), unparsable=0)
    if task.protocol == DIALOGUE:
        parsed = [parse_answer(task.answer_type, text) for text in output]
        golds = [memory_gold(task, text) for text in gold]
        return ScoredItem(parsed, memory_item(parsed, golds, labels), unparsable=parsed.count(None))
    parsed = parse_answer(task.answer_type, output)
    gold = parse_gold(task, gold)
    return ScoredItem(
        parsed,
        _answer_scores(task, parsed, gold),
        unparsable=int(parsed is None),
        extra_scores=_lenient_scores(task, output, gold),
    )
