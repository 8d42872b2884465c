"""Which items of a task split to list (filters over the runs) and the table of one page of them."""

from __future__ import annotations

from dataclasses import dataclass

from babyvlm.evaluate_metrics.devcv.parsing import parse_number
from babyvlm.evaluate_metrics.devcv.tasks import DevCVTask

from .dataset import TaskSplit
from .runs import Run, is_correct, parsed_text

ALL, WRONG, UNPARSABLE, DISAGREEMENT = "all items", "wrong only", "unparsable only", "runs disagree"
FILTERS = [ALL, WRONG, UNPARSABLE, DISAGREEMENT]
ANY_RUN = "any run"
ANY_COUNT = "any count"
PAGE_SIZE = 20


@dataclass(frozen=True)
class Selection:
    filter: str = ALL
    run: str = ANY_RUN
    """The run the wrong/unparsable filters look at (``ANY_RUN``: at least one run)."""
    true_count: str = ANY_COUNT
    """Object Counting: only items with this gold count."""


def true_counts(task_split: TaskSplit) -> list[str]:
    """The gold counts present (Object Counting), ascending; empty for other tasks."""
    if task_split.task.answer_type != "number":
        return []
    counts = {parse_number(row["answer"][0]) for row in task_split.index if row["answer"]}
    return [str(count) for count in sorted(count for count in counts if count is not None)]


def _item_matches(task_split: TaskSplit, row: dict, runs: list[Run], selection: Selection) -> bool:
    if selection.true_count != ANY_COUNT:
        if not row["answer"] or str(parse_number(row["answer"][0])) != selection.true_count:
            return False
    if selection.filter == ALL:
        return True
    task = task_split.task
    entries = [run.entries.get(task.name, {}).get(row["id"]) for run in runs]
    if selection.filter == DISAGREEMENT:
        parsed = [repr(entry["parsed"]) for entry in entries if entry is not None]
        return len(set(parsed)) > 1
    looked_at = [entry for run, entry in zip(runs, entries) if selection.run in (ANY_RUN, run.name) and entry]
    if selection.filter == WRONG:
        return any(not is_correct(task, entry) for entry in looked_at)
    if selection.filter == UNPARSABLE:
        return any(entry["unparsable"] for entry in looked_at)
    raise ValueError(f"unknown filter {selection.filter!r} (filters: {', '.join(FILTERS)})")


def select(task_split: TaskSplit, runs: list[Run], selection: Selection) -> list[int]:
    """Positions of the items that pass the selection, in dataset order."""
    return [
        position for position, row in enumerate(task_split.index) if _item_matches(task_split, row, runs, selection)
    ]


def page_count(positions: list[int]) -> int:
    return max(1, -(-len(positions) // PAGE_SIZE))


def page_positions(positions: list[int], page: int) -> list[int]:
    """The positions on 1-based ``page`` (clamped to the pages there are)."""
    page = min(max(1, page), page_count(positions))
    return positions[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]


def _verdict(task: DevCVTask, entry: dict | None) -> str:
    if entry is None:
        return "—"
    mark = "✓" if is_correct(task, entry) else "✗"
    return f"{mark} {parsed_text(entry, task)}" + (" (unparsable)" if entry["unparsable"] else "")


def page_table(task_split: TaskSplit, runs: list[Run], positions: list[int]) -> tuple[list[str], list[list]]:
    """Header and rows (item number, id, gold, each run's parsed answer with ✓/✗) of a page."""
    header = ["#", "id", "gold"] + [run.name for run in runs]
    rows = []
    for position in positions:
        row = task_split.index[position]
        verdicts = [_verdict(task_split.task, run.entries.get(task_split.task.name, {}).get(row["id"])) for run in runs]
        rows.append([position, row["id"], " ".join(row["answer"]), *verdicts])
    return header, rows
