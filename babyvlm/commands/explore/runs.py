"""Evaluation runs (``babyvlm eval`` output folders) laid over a DevCV folder.

A run folder holds ``predictions.jsonl`` (one scored item per line), ``run.json`` (model, data,
split), ``summary.json`` (per-task scores) and the runner's plots. An item counts as correct when
its primary metric scores 1 (a Memory item: every learned object right in both testing rounds).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.tasks import LOGLIKELIHOOD, DevCVTask, canonical_task
from babyvlm.evaluate_metrics.predictions import PREDICTIONS_FILE, RUN_FILE, distinct_names, model_name
from babyvlm.evaluate_metrics.report import COUNT_PLOT, SCORES_PLOT, partial_note

from .dataset import ExploreError, TaskSplit

SUMMARY_FILE = "summary.json"
# What every predictions.jsonl line holds (see evaluate_metrics.runner.score_entry).
ENTRY_KEYS = ("task", "id", "output", "gold", "parsed", "scores", "unparsable")


@dataclass
class Run:
    name: str
    path: Path
    config: dict
    """``run.json``: model, data folder, split, generation settings."""
    summary: dict | None
    entries: dict[str, dict[str, dict]] = field(default_factory=dict)
    """Prediction entries by canonical task name and item id."""

    @property
    def split(self) -> str | None:
        return self.config.get("split")

    @property
    def model(self) -> str:
        return str(self.config.get("model", "?"))

    def plots(self) -> list[Path]:
        """The runner's plots this run has, in a fixed order."""
        return [self.path / name for name in (SCORES_PLOT, COUNT_PLOT) if (self.path / name).is_file()]


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ExploreError(f"{path} is not valid JSON ({error})") from error


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read a run folder, named ``name`` or by its model's name (``model_name`` of ``run.json``, else the folder's);
    :class:`ExploreError` names the file or line that is not what the runner writes."""
    path = Path(path)
    predictions = path / PREDICTIONS_FILE
    if not predictions.is_file():
        raise ExploreError(
            f"{path} is not an evaluation run folder (no {PREDICTIONS_FILE}; make one with babyvlm eval)"
        )
    entries: dict[str, dict[str, dict]] = defaultdict(dict)
    for line_number, line in enumerate(predictions.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise ExploreError(f"{predictions}, line {line_number}: not JSON ({error})") from error
        missing = [key for key in ENTRY_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise ExploreError(f"{predictions}, line {line_number}: not a prediction entry (no {', '.join(missing)})")
        try:
            task = canonical_task(entry["task"]).name
        except KeyError as error:
            raise ExploreError(f"{predictions}, line {line_number}: {error.args[0]}") from error
        entries[task][entry["id"]] = entry
    config = _read_json(path / RUN_FILE) or {}
    return Run(
        name=name or model_name(config) or path.name,
        path=path,
        config=config,
        summary=_read_json(path / SUMMARY_FILE),
        entries=dict(entries),
    )


def name_apart(runs: list[Run]) -> None:
    """Follow the name of each run that shares its model with another by the run's folder name."""
    for run, name in zip(runs, distinct_names([run.name for run in runs], [run.path for run in runs])):
        run.name = name


def mismatch(run: Run, task_split: TaskSplit) -> str | None:
    """Why ``run`` cannot be laid over this task split (another dataset or split), else None.

    Items are matched by id and gold answer: a run made on another folder has other ids or golds.
    """
    task = task_split.task.name
    if run.split is not None and run.split != task_split.split:
        return f"run {run.name} was made on split {run.split!r}, not {task_split.split!r}"
    entries = run.entries.get(task)
    if not entries:
        return f"run {run.name} has no {task} predictions"
    gold = {row["id"]: list(row["answer"]) for row in task_split.index}
    unknown = [item_id for item_id in entries if item_id not in gold]
    if unknown:
        return (
            f"run {run.name} is for another dataset: {len(unknown)} of its {len(entries)} {task} items are not in "
            f"this folder (e.g. {unknown[0]!r}; the run used {run.config.get('data', 'an unknown folder')})"
        )
    changed = [item_id for item_id, entry in entries.items() if list(entry["gold"]) != gold[item_id]]
    if changed and task_split.task.protocol != LOGLIKELIHOOD:
        return (
            f"run {run.name} is for another dataset: {len(changed)} {task} items have other gold answers "
            f"here (e.g. {changed[0]!r})"
        )
    return None


def is_correct(task: DevCVTask, entry: dict) -> bool:
    return entry["scores"].get(task.primary_metric, 0.0) >= 1.0


def parsed_text(entry: dict, task: DevCVTask) -> str:
    """The parsed answer (``?`` where unparsable; Memory's rounds in a row; LWL: its primary score)."""
    parsed = entry["parsed"]
    if task.protocol == LOGLIKELIHOOD:
        return f"{task.primary_metric} {entry['scores'][task.primary_metric]:.0f}"
    if isinstance(parsed, list):
        return " ".join("?" if answer is None else str(answer) for answer in parsed)
    return "?" if parsed is None else str(parsed)


def _interval_and_n(run_task: dict | None) -> tuple[str | None, str | None]:
    """A task's 95% interval and its n (items, with Memory's objects), as the table shows them."""
    if run_task is None:
        return None, None
    interval = f"[{run_task['ci_low']:.3f}, {run_task['ci_high']:.3f}]" if "ci_low" in run_task else None
    objects = f" ({run_task['objects']} objects)" if "objects" in run_task else ""
    return interval, f"{run_task['n']}{objects}"


def run_title(run: Run) -> str:
    """The run's name, with "partial: N of M items" where it did not evaluate all its items."""
    note = partial_note(run.summary or {})
    return f"{run.name} ({note})" if note else run.name


def score_table(runs: list[Run]) -> tuple[list[str], list[list]]:
    """Header and rows of the per-task scores, the runs side by side (from each run's summary.json): each primary
    metric followed by its 95% interval and n; a run that did not evaluate all its items is marked partial."""
    header = ["task", "metric", "chance"] + [run_title(run) for run in runs]
    keys = list(dict.fromkeys(key for run in runs if run.summary for key in run.summary.get("tasks", {})))
    rows = []
    for key in keys:
        task = next(run.summary["tasks"][key] for run in runs if run.summary and key in run.summary.get("tasks", {}))
        primary = task["primary_metric"]
        for metric in [primary, *(metric for metric in task["metrics"] if metric != primary)]:
            scores = []
            for run in runs:
                run_task = (run.summary or {}).get("tasks", {}).get(key)
                scores.append(round(run_task["metrics"][metric], 3) if run_task else None)
            chance = round(task["chance"], 3) if metric == primary else None
            rows.append([task["display_name"], metric + (" (primary)" if metric == primary else ""), chance, *scores])
            if metric == primary:
                cells = [_interval_and_n((run.summary or {}).get("tasks", {}).get(key)) for run in runs]
                rows.append([task["display_name"], "95% CI", None, *(interval for interval, _ in cells)])
                rows.append([task["display_name"], "n", None, *(n for _, n in cells)])
    for label in ("overall", "overall_chance_normalized"):
        scores = [round(run.summary[label], 3) if run.summary and label in run.summary else None for run in runs]
        rows.append(["Overall", label, None, *scores])
    return header, rows
