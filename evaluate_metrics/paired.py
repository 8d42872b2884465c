"""Tests between two evaluation runs, task by task and overall (evaluate_metrics/README.md, "Comparing runs").

On the same items (the same data folder, split and item ids) the runs are paired: the exact McNemar test for a
task whose score is a per-item accuracy, a paired clustered bootstrap of the difference otherwise (Memory's
adjusted score, Looking While Listening's group score) and for the overall (the mean over the leaderboard tasks
both runs evaluated). The per-task p-values are Holm-corrected across the tasks of the pair. Runs over different
items are refused for the paired test, naming what differs, and compared unpaired (independent bootstraps) with
a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.devcv.uncertainty import (
    N_RESAMPLES,
    holm,
    mcnemar,
    paired_difference,
)

from .statistics import OVERALL_TASKS, TaskSample

LEVEL = 0.05
"""Significance level of the verdicts (after Holm's correction)."""


@dataclass
class PairedRow:
    """One task's (or the overall's) comparison of run A with run B."""

    harness_key: str
    display_name: str
    difference: float
    ci_low: float
    ci_high: float
    test: str
    p_value: float
    p_holm: float | None
    n: int

    def verdict(self, name_a: str, name_b: str) -> str:
        """``A > B, p = …`` (Holm-corrected where corrected) at p < :data:`LEVEL`, else "no difference detected"."""
        p = self.p_holm if self.p_holm is not None else self.p_value
        if p >= LEVEL:
            return "no difference detected"
        better = f"{name_a} > {name_b}" if self.difference > 0 else f"{name_b} > {name_a}"
        return f"{better}, p = {p:.2g}"


def pairing_problem(config_a: Mapping, config_b: Mapping, sample_a: TaskSample, sample_b: TaskSample) -> str | None:
    """Why two runs' items of one task cannot be paired, or None when they can."""
    for key in ("data", "split"):
        if config_a.get(key) != config_b.get(key):
            return f"different {key} ({config_a.get(key)} vs {config_b.get(key)})"
    if sorted(sample_a.ids) != sorted(sample_b.ids):
        only_a, only_b = set(sample_a.ids) - set(sample_b.ids), set(sample_b.ids) - set(sample_a.ids)
        return f"different items ({len(only_a)} only in the first, {len(only_b)} only in the second)"
    return None


def aligned(sample: TaskSample, ids: list[str]) -> TaskSample:
    """``sample``'s items in the order of ``ids`` (the same set)."""
    position = {item_id: index for index, item_id in enumerate(sample.ids)}
    order = [position[item_id] for item_id in ids]

    def pick(values):
        return [values[index] for index in order]

    return TaskSample(
        sample.task,
        pick(sample.ids),
        sample.values[order],
        pick(sample.units),
        pick(sample.unit_kinds),
        pick(sample.sources),
        pick(sample.rounds),
    )


def compare_pair(
    config_a: Mapping,
    samples_a: Mapping[str, TaskSample],
    config_b: Mapping,
    samples_b: Mapping[str, TaskSample],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[list[PairedRow], list[str]]:
    """Per task both runs scored (by harness key), then the overall: the difference A - B with its interval and
    test; and the warnings (tasks compared unpaired, and why)."""
    rows, warnings, overall = [], [], {"a": [], "b": [], "difference": [], "paired": True, "n": 0}
    for task in TASKS.values():
        key = task.harness_key
        if key not in samples_a or key not in samples_b:
            continue
        a, b = samples_a[key], samples_b[key]
        problem = pairing_problem(config_a, config_b, a, b)
        if problem is None:
            b = aligned(b, a.ids)
            replicates_a = a.resampler(n_resamples, seed).replicates(a.values)
            replicates_b = a.resampler(n_resamples, seed).replicates(b.values)  # the same draws: paired
        else:
            warnings.append(f"{task.display_name}: not paired, {problem}; compared unpaired")
            replicates_a = a.resampler(n_resamples, seed).replicates(a.values)
            replicates_b = b.resampler(n_resamples, seed + 1).replicates(b.values)
        difference = float(a.values.mean() - b.values.mean())
        low, high, bootstrap_p = paired_difference(replicates_a, replicates_b, difference)
        if problem is None and task.per_item_accuracy:
            test, p_value = "McNemar (exact)", mcnemar(a.values, b.values).p_value
        else:
            test, p_value = ("paired bootstrap" if problem is None else "unpaired bootstrap"), bootstrap_p
        rows.append(PairedRow(key, task.display_name, difference, low, high, test, p_value, None, len(a.ids)))
        if task in OVERALL_TASKS:
            overall["a"].append(replicates_a)
            overall["b"].append(replicates_b)
            overall["difference"].append(difference)
            overall["paired"] &= problem is None
            overall["n"] += len(a.ids)
    for row, adjusted in zip(rows, holm([row.p_value for row in rows])):
        row.p_holm = adjusted
    if overall["difference"]:
        tasks = len(overall["difference"])
        difference = sum(overall["difference"]) / tasks
        low, high, p_value = paired_difference(np.mean(overall["a"], axis=0), np.mean(overall["b"], axis=0), difference)
        test = "paired bootstrap" if overall["paired"] else "unpaired bootstrap"
        name = f"Overall (mean of the {tasks} leaderboard tasks both ran)"
        rows.append(PairedRow("overall", name, difference, low, high, test, p_value, None, overall["n"]))
    return rows, warnings


def interval_text(low: float, high: float) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"
