"""Build accounting: every released item is either written or skipped with a reason.

Reasons are short stable codes (grep-able, countable) plus a human detail naming the field or file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
PLACEHOLDER_MISMATCH = "placeholder_mismatch"
MALFORMED_CONVERSATION = "malformed_conversation"
MALFORMED_FIELD = "malformed_field"
PATH_OUTSIDE_ROOT = "path_outside_root"
# A second copy of an item already written: same id, same content, same image bytes. An item that
# only shares its id with another is kept under a new id (:class:`RenamedItem`).
DUPLICATE_ITEM = "duplicate_item"
TOO_LARGE = "too_large"
# A gold answer the task's official parser cannot read (a count of "many", a localisation letter "E").
INVALID_ANSWER = "invalid_answer"
# File-level reasons: the whole file is skipped and its items cannot be counted one by one.
UNKNOWN_TASK = "unknown_task"
UNREADABLE_FILE = "unreadable_file"


class ItemSkipped(Exception):
    """An item (or file) that cannot be written, with a reason code and a detail naming the culprit."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):
        # Travels back from image-loading worker processes.
        return ItemSkipped, (self.reason, self.detail)


@dataclass
class SkippedItem:
    file: str
    index: int
    """Position of the item in its released JSON list (a CSV: the line of the instance's first row)."""
    id: str | None
    task: str
    split: str
    reason: str
    detail: str


@dataclass
class SkippedFile:
    file: str
    reason: str
    detail: str


@dataclass
class RenamedItem:
    """A different item released under an id already written for its task and split."""

    file: str
    index: int
    original_id: str
    id: str
    first: str
    """Where the first item with this id was read (``file[index]``)."""


@dataclass
class FileSummary:
    file: str
    source: str
    source_task: str
    task: str
    split: str
    items: int = 0
    written: int = 0
    task_from: str = "name"
    """How the task was decided: ``name``, ``prompt``, ``columns``, ``source`` or ``override`` (``recognise.py``)."""
    task_detail: str = ""


@dataclass
class BuildReport:
    """What a build read, wrote and skipped; serialised as ``build_report.json`` in the dataset folder."""

    files: list[FileSummary] = field(default_factory=list)
    skipped_files: list[SkippedFile] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    renamed: list[RenamedItem] = field(default_factory=list)
    fingerprint: str = ""
    """SHA-256 over the written parquet shards: the same input gives the same fingerprint."""
    ids_name_sources: bool = False
    """The build mixes sources, so every id is ``<source>:<released id>`` (:mod:`babyvlm.item_ids`)."""
    audit: list[dict] | None = None
    """The shortcut audit's results (:class:`~.audit.ShortcutAudit` as dicts; None: not run)."""

    @property
    def items(self) -> int:
        return sum(summary.items for summary in self.files)

    @property
    def written(self) -> int:
        return sum(summary.written for summary in self.files)

    @property
    def ok(self) -> bool:
        """Nothing was skipped (what ``--strict`` requires)."""
        return not self.skipped and not self.skipped_files

    def counts(self) -> dict[str, dict[str, int]]:
        """Written items per task and split."""
        counts: dict[str, dict[str, int]] = {}
        for summary in self.files:
            per_split = counts.setdefault(summary.task, {})
            per_split[summary.split] = per_split.get(summary.split, 0) + summary.written
        return counts

    def skip_reasons(self) -> Counter:
        return Counter(skip.reason for skip in [*self.skipped, *self.skipped_files])

    def to_dict(self) -> dict:
        return {
            "items": self.items,
            "written": self.written,
            "skipped": len(self.skipped),
            "skipped_files": len(self.skipped_files),
            "renamed": len(self.renamed),
            "ids_name_sources": self.ids_name_sources,
            "skip_reasons": dict(sorted(self.skip_reasons().items())),
            "counts": self.counts(),
            "fingerprint": self.fingerprint,
            "audit": self.audit,
            "files": [asdict(summary) for summary in self.files],
            "skipped_file_list": [asdict(skip) for skip in self.skipped_files],
            "skipped_item_list": [asdict(skip) for skip in self.skipped],
            "renamed_item_list": [asdict(renamed) for renamed in self.renamed],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def summary(self, max_listed: int = 20) -> str:
        """Printable summary: totals, skip reasons and the first skipped items."""
        lines = [f"DevCV build: {self.items} items read, {self.written} written, {len(self.skipped)} skipped"]
        if self.skipped_files:
            lines.append(f"{len(self.skipped_files)} file(s) skipped:")
            lines += [f"  {skip.file}: {skip.reason}: {skip.detail}" for skip in self.skipped_files]
        for reason, count in sorted(self.skip_reasons().items()):
            lines.append(f"  {reason}: {count}")
        inferred = [summary for summary in self.files if summary.task_from != "name"]
        for summary in inferred:
            lines.append(f"  task of {summary.file}: {summary.task} ({summary.task_from}: {summary.task_detail})")
        if self.ids_name_sources:
            sources = ", ".join(sorted({summary.source for summary in self.files}))
            lines.append(f"ids name their source (<source>:<released id>): the build mixes {sources}")
        if self.renamed:
            lines.append(f"{len(self.renamed)} different item(s) released under an id already used, kept as:")
            lines += [
                f"  {item.file}[{item.index}] {item.original_id!r} -> {item.id!r}" for item in self.renamed[:max_listed]
            ]
        for skip in self.skipped[:max_listed]:
            lines.append(f"  skipped {skip.file}[{skip.index}] id={skip.id!r}: {skip.reason}: {skip.detail}")
        if len(self.skipped) > max_listed:
            lines.append(f"  ... and {len(self.skipped) - max_listed} more (see build_report.json)")
        return "\n".join(lines)
