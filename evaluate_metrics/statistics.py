"""Intervals, n and tests of a run's scores, from its prediction entries (evaluate_metrics/README.md,
"Intervals and tests"); the arithmetic is :mod:`.devcv.uncertainty`'s.

A task's score is the mean over its items of the primary metric each item scored (the entry's ``scores``, as the
metric code computed them), so every interval resamples those per-item values, clustered by the unit the items
share (:mod:`.units`). Each task draws its resamples from its own seed (the run's ``seed`` and the task's place
in the task table), so two runs of the same items are resampled alike, which pairs their replicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from babyvlm.evaluate_metrics.devcv.scores import memory_learning_rounds
from babyvlm.evaluate_metrics.devcv.tasks import TASKS, DevCVTask
from babyvlm.evaluate_metrics.devcv.uncertainty import (
    N_RESAMPLES,
    Resampler,
    binomial_p_value,
    bootstrap_p_value,
    percentile_interval,
)

from .units import ITEM_UNIT, Clustering, clustering

TASK_ORDER = {name: index for index, name in enumerate(TASKS)}
OVERALL_TASKS = [task for task in TASKS.values() if task.in_overall]


@dataclass
class TaskSample:
    """One task's scored items: ids, per-item primary values, units (:mod:`.units`) and where each item comes
    from."""

    task: DevCVTask
    ids: list[str]
    values: np.ndarray
    units: list[str]
    unit_kinds: list[str]
    sources: list[str]
    rounds: list[int]

    @classmethod
    def from_entries(cls, task: DevCVTask, entries: Sequence[Mapping]) -> TaskSample:
        ids = [entry["id"] for entry in entries]
        return cls(
            task,
            ids,
            np.array([entry["scores"][task.primary_metric] for entry in entries], dtype=float),
            [entry.get("unit", "") for entry in entries],
            [entry.get("unit_kind", ITEM_UNIT) for entry in entries],
            [entry.get("source") or "" for entry in entries],
            [len(entry["gold"]) for entry in entries],
        )

    def subset(self, keep: Sequence[bool]) -> TaskSample:
        keep = np.asarray(keep, dtype=bool)

        def pick(values):
            return [value for value, kept in zip(values, keep) if kept]

        return TaskSample(
            self.task,
            pick(self.ids),
            self.values[keep],
            pick(self.units),
            pick(self.unit_kinds),
            pick(self.sources),
            pick(self.rounds),
        )

    @property
    def clustering(self) -> Clustering:
        return clustering(self.units, self.unit_kinds, self.ids)

    def resampler(self, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Resampler:
        return Resampler(self.clustering.labels, n_resamples=n_resamples, seed=[seed, TASK_ORDER[self.task.name]])

    @property
    def objects(self) -> int | None:
        """Learned objects behind the score of a dialogue task (Memory), None for single-answer items."""
        if not any(rounds > 1 for rounds in self.rounds):
            return None
        return sum(memory_learning_rounds(rounds) for rounds in self.rounds if rounds > 1)


def chance_trials(sample: TaskSample) -> np.ndarray:
    """The chance level's trials behind each item's score: one per single-answer item, one per learned object of
    a dialogue (Memory's adjusted score counts objects, each right by chance with the task's chance level)."""
    return np.array([memory_learning_rounds(rounds) if rounds > 1 else 1 for rounds in sample.rounds])


def chance_p_value(sample: TaskSample, replicates: np.ndarray) -> float:
    """One-sided p-value of the task's score against its chance level: the exact binomial test over the chance
    trials where the score counts right trials (per-item accuracies, LWL's group score, Memory's objects), else
    the bootstrap test."""
    trials = chance_trials(sample)
    successes = sample.values * trials
    if np.allclose(successes, np.round(successes)):
        return binomial_p_value(int(round(successes.sum())), int(trials.sum()), sample.task.chance)
    return bootstrap_p_value(float(sample.values.mean()), replicates, sample.task.chance)


def score_statistics(sample: TaskSample, n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[dict, np.ndarray]:
    """``score``, ``n``, ``ci_low``, ``ci_high``, ``p_value`` (vs chance), ``chance`` and the clustering of one
    item set, and its bootstrap replicates."""
    resampler, clustered = sample.resampler(n_resamples, seed), sample.clustering
    replicates = resampler.replicates(sample.values)
    low, high = percentile_interval(replicates)
    statistics = {
        "score": float(sample.values.mean()),
        "n": len(sample.ids),
        "ci_low": low,
        "ci_high": high,
        "p_value": chance_p_value(sample, replicates),
        "chance": sample.task.chance,
        "cluster_unit": clustered.unit,
        "n_clusters": resampler.n_clusters,
        "items_without_unit": sample.unit_kinds.count(ITEM_UNIT),
    }
    if clustered.note:
        statistics["cluster_note"] = clustered.note
    if sample.objects is not None:
        statistics["objects"] = sample.objects
    return statistics, replicates


def breakdown(
    sample: TaskSample, labels: Sequence[str], n_resamples: int = N_RESAMPLES, seed: int = 0
) -> dict[str, dict]:
    """The statistics of each group of items sharing a label (items with an empty label are left out)."""
    groups = {}
    for label in sorted({label for label in labels if label}):
        groups[label] = score_statistics(sample.subset([item == label for item in labels]), n_resamples, seed)[0]
    return groups


def task_statistics(
    sample: TaskSample,
    by: Mapping[str, Mapping[str, str]] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[dict, np.ndarray]:
    """:func:`score_statistics` of a task, with ``by_source`` when its items come from several sources and
    ``by`` (column -> item id -> value) broken down under ``by_<column>``."""
    statistics, replicates = score_statistics(sample, n_resamples, seed)
    if len(set(sample.sources)) > 1:
        statistics["by_source"] = breakdown(sample, sample.sources, n_resamples, seed)
    for column, values in (by or {}).items():
        statistics[f"by_{column}"] = breakdown(
            sample, [values.get(item_id, "") for item_id in sample.ids], n_resamples, seed
        )
    return statistics, replicates


def _mean_statistics(scores: list[float], replicates: list[np.ndarray], denominator: int, chance: float) -> dict:
    estimate = sum(scores) / denominator
    combined = np.sum(replicates, axis=0) / denominator
    low, high = percentile_interval(combined)
    return {
        "score": estimate,
        "ci_low": low,
        "ci_high": high,
        "p_value": bootstrap_p_value(estimate, combined, chance),
        "chance": chance,
    }


def overall_statistics(tasks: Mapping[DevCVTask, tuple[dict, np.ndarray]]) -> dict:
    """The official overall (mean of the 11 leaderboard tasks' primary metrics, a missing task counting 0) with its
    interval, and the mean over the evaluated leaderboard tasks with the list of those missing.

    Tasks are separate item sets, so the overall's replicates are the mean of the tasks' replicates.
    ``comparable`` says whether the official overall may be set beside complete runs'.
    """
    evaluated = [task for task in OVERALL_TASKS if task in tasks]
    missing = [task.harness_key for task in OVERALL_TASKS if task not in tasks]
    n = sum(tasks[task][0]["n"] for task in evaluated)
    official = {"n": n, "tasks": len(evaluated), "comparable": not missing, "missing": missing}
    if not evaluated:
        return {"official": {**official, "score": 0.0}, "evaluated": None}
    scores = [tasks[task][0]["score"] for task in evaluated]
    replicates = [tasks[task][1] for task in evaluated]
    chance = sum(task.chance for task in OVERALL_TASKS) / len(OVERALL_TASKS)
    official.update(_mean_statistics(scores, replicates, len(OVERALL_TASKS), chance))
    evaluated_chance = sum(task.chance for task in evaluated) / len(evaluated)
    mean_evaluated = {
        **_mean_statistics(scores, replicates, len(evaluated), evaluated_chance),
        "n": n,
        "tasks": [task.harness_key for task in evaluated],
        "missing": missing,
    }
    if missing:
        official.pop("p_value")  # a score with missing tasks counted 0 tests nothing about the model
    return {"official": official, "evaluated": mean_evaluated}
