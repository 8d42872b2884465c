"""Generation accounting: every candidate a generator tried was written or skipped with a reason,
and every frame annotation became a scene, repeated one, or showed nothing.

Serialised as ``generation_report.json`` in the dataset folder and summarised in its card.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

DUPLICATE_CONTENT = "duplicate_content"
ANSWER_QUOTA_FULL = "answer_quota_full"
"""Held back so that no answer value gets more than its share of the items."""


class Skip(Exception):
    """A candidate no item can be built from; ``reason`` is a short report code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class TaskSummary:
    """One task in one split."""

    task: str
    split: str
    requested: int
    candidates: int = 0
    """Candidates the generator could build items from (scenes, objects, exit clips ...)."""
    written: int = 0
    skipped: Counter = field(default_factory=Counter)

    @property
    def untried(self) -> int:
        """Candidates left over once ``requested`` items were written."""
        return self.candidates - self.written - sum(self.skipped.values())


@dataclass
class GenerationReport:
    settings: dict
    recordings: dict[str, list[str]]
    """Split -> its recordings."""
    frames: dict[str, int]
    """How the frame annotations were used (see :class:`~.corpus.SceneTally`), plus the total."""
    exits: int
    video_errors: dict[str, str] = field(default_factory=dict)
    tasks: list[TaskSummary] = field(default_factory=list)
    fingerprint: str = ""
    audit: list[dict] | None = None
    """The shortcut audit's results (None: not run)."""

    @property
    def written(self) -> int:
        return sum(summary.written for summary in self.tasks)

    def counts(self) -> dict[str, dict[str, int]]:
        """Written items per task and split (splits without items left out)."""
        counts: dict[str, dict[str, int]] = {}
        for summary in self.tasks:
            if summary.written:
                counts.setdefault(summary.task, {})[summary.split] = summary.written
        return counts

    def to_dict(self) -> dict:
        tasks = [
            {**asdict(summary), "skipped": dict(sorted(summary.skipped.items())), "untried": summary.untried}
            for summary in self.tasks
        ]
        return {**asdict(self), "written": self.written, "counts": self.counts(), "tasks": tasks}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def table(self) -> str:
        """Markdown table: per task and split, what was asked, tried, written and skipped."""
        lines = [
            "| task | split | requested | candidates | written | skipped | untried |",
            "|---|---|---|---|---|---|---|",
        ]
        for summary in self.tasks:
            skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items())) or "—"
            lines.append(
                f"| {summary.task} | {summary.split} | {summary.requested} | {summary.candidates} "
                f"| {summary.written} | {skipped} | {summary.untried} |"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        """Printable summary for the command line."""
        splits = ", ".join(f"{split} {len(names)}" for split, names in self.recordings.items())
        lines = [
            (
                f"DevCV generation: {self.written} items; recordings per split: {splits}; "
                f"{self.frames['frames']} frames -> {self.frames['scenes']} scenes; {self.exits} exit clips"
            )
        ]
        for summary in self.tasks:
            skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
            lines.append(
                f"  {summary.task:<24} {summary.split:<10} {summary.written:>6} / {summary.requested:<6} {skipped}"
            )
        lines += [f"  video error: {recording}: {error}" for recording, error in sorted(self.video_errors.items())]
        return "\n".join(lines)
