"""The DevCV metrics as plain functions (the metric card, README.md), as the
official code computes them: the authors' ``utils.py`` (ShawnKing98/BabyLLaVA-V2) and, for Looking
While Listening, the ``baby_winoground`` task of ShawnKing98/babylmms-eval; each rule cites its source.

Per-item functions take already-parsed answers (see :mod:`.parsing`; ``None`` = unparsable, always
wrong) and return ``{metric: value}``; every task metric is the mean of its per-item values over
the items (:func:`mean_scores`), as the authors' ``sum_*_task_accuracies`` and lmms-eval aggregate them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from .tasks import DIRECTIONS, TASKS


def accuracy_item(prediction, gold) -> dict[str, float]:
    """``acc``: 1 when the parsed prediction equals the parsed gold answer (``utils.py`` ``calc_*_task_accuracy``)."""
    return {"acc": float(prediction is not None and prediction == gold)}


def adjacent_directions(gold: str) -> tuple[str, ...]:
    """The answers ``acc_adjacent`` accepts for ``gold``: it and its two compass neighbours (gold ``left``
    accepts ``top left``, ``left``, ``bottom left``), as ``utils.py`` ``adjacent_directions_word_mapping``."""
    index = DIRECTIONS.index(gold)
    return tuple(DIRECTIONS[(index + step) % len(DIRECTIONS)] for step in (-1, 0, 1))


def vdr_item(prediction: str | None, gold: str) -> dict[str, float]:
    """Visual Delayed Response from whole normalised answers (:func:`.parsing.normalize_direction`).

    ``acc_exact``: the answer is the gold direction; ``acc_adjacent``: it is in the gold's adjacent set
    (``utils.py`` ``calc_vdr_task_accuracy``). Also used for the lenient extras, with leniently parsed answers.
    """
    return {
        "acc_exact": float(prediction == gold),
        "acc_adjacent": float(prediction is not None and prediction in adjacent_directions(gold)),
    }


def memory_learning_rounds(num_rounds: int) -> int:
    """Rounds that introduce the learned objects: 5 of 15, 10 of the 30-round NIH item (``utils.py``
    ``calc_memory_task_accuracy``: ``base_round = (len(predictions) + 1) // 3``)."""
    return (num_rounds + 1) // 3


def memory_item(
    predictions: Sequence[str | None], golds: Sequence[str], labels: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Memory: learning accuracy, raw testing accuracy and the adjusted (primary) testing score, as
    ``utils.py`` ``calc_memory_task_accuracy`` computes them.

    ``labels[r]`` names the objects shown in round ``r`` (the released ``labels``, or any key that
    identifies an object, such as an image fingerprint). The learned labels are those of the first
    ``base`` rounds. Each testing round is filed under the learned label it shows; a learned label
    counts for ``acc_testing_adjusted`` only when exactly two testing rounds show it and both are
    answered right, and the count is divided by ``base``. A testing round showing no learned label
    is left out of the adjusted score; one showing several is filed under the first in option order
    (the authors' code takes an arbitrary one: it assumes there is only one).
    """
    num_rounds = len(golds)
    if len(predictions) != num_rounds or len(labels) != num_rounds:
        raise ValueError(
            f"memory item: {len(predictions)} predictions and {len(labels)} label rounds for {num_rounds} gold rounds"
        )
    base = memory_learning_rounds(num_rounds)
    if not 0 < base < num_rounds:
        raise ValueError(f"memory item: {num_rounds} rounds leave no testing rounds")
    correct = [prediction is not None and prediction == gold for prediction, gold in zip(predictions, golds)]

    learned = {label for round_labels in labels[:base] for label in round_labels}
    tested: dict[str, list[bool]] = defaultdict(list)
    for round_index in range(base, num_rounds):
        shown = [label for label in labels[round_index] if label in learned]
        if shown:
            tested[shown[0]].append(correct[round_index])

    testing = correct[base:]
    return {
        "acc_learning": sum(correct[:base]) / base,
        "acc_testing_raw": sum(testing) / len(testing),
        "acc_testing_adjusted": sum(len(rounds) == 2 and all(rounds) for rounds in tested.values()) / base,
    }


def lwl_item(losses: Sequence[Sequence[float]]) -> dict[str, float]:
    """Looking While Listening from the 2×2 losses ``losses[image i][phrase j]`` (phrase j describes image j).

    Text score: each image prefers its own phrase; image score: each phrase prefers its own image;
    group score (primary): both; ties lose (babylmms-eval lmms_eval/tasks/baby_winoground/utils.py
    ``baby_winoground_aggregate_*_score``).
    """
    (l00, l01), (l10, l11) = losses
    text = l00 < l01 and l11 < l10
    image = l00 < l10 and l11 < l01
    return {"text_score": float(text), "image_score": float(image), "group_score": float(text and image)}


def mean_scores(item_scores: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average per-item metric dicts into task metrics; ``ValueError`` when there are no items."""
    if not item_scores:
        raise ValueError("cannot score a task with no items")
    return {metric: sum(scores[metric] for scores in item_scores) / len(item_scores) for metric in item_scores[0]}


def chance_normalized(score: float, chance: float) -> float:
    """Rescale a score so that chance is 0 and perfect is 1 (below chance is negative)."""
    return (score - chance) / (1 - chance)


def overall_score(results: Mapping[str, Mapping[str, float]]) -> float:
    """Mean of the 11 primary metrics over the leaderboard tasks; a missing task counts 0.

    ``results`` maps harness keys to metric dicts, as in the leaderboard ``results.json``.
    """
    overall = [task for task in TASKS.values() if task.in_overall]
    return sum(results.get(task.harness_key, {}).get(task.primary_metric, 0.0) for task in overall) / len(overall)


def overall_chance_normalized(results: Mapping[str, Mapping[str, float]]) -> float:
    """Mean chance-normalised primary metric over the 11 leaderboard tasks (a missing task counts 0)."""
    overall = [task for task in TASKS.values() if task.in_overall]
    return sum(
        chance_normalized(results.get(task.harness_key, {}).get(task.primary_metric, 0.0), task.chance)
        for task in overall
    ) / len(overall)
