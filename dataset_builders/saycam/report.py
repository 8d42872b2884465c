"""Accounting for every input: each utterance and recording is kept, filtered (by which rule) or failed (why)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Failure:
    """An input that could not be used: ``item`` names it (file, or recording and transcript row)."""

    item: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Tally:
    """Outcome of every utterance offered to one corpus, and how many records came out.

    For an utterance-based corpus ``kept + filtered + failed`` covers every transcript row.
    """

    records: int = 0
    kept: int = 0
    filtered: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    details: Counter = field(default_factory=Counter)
    """Counts outside the per-utterance accounting (image pairs below the CLIP score, mix records per format)."""

    def total(self) -> int:
        return self.kept + sum(self.filtered.values()) + sum(self.failed.values())

    def add(self, other: Tally) -> None:
        self.records += other.records
        self.kept += other.kept
        self.filtered.update(other.filtered)
        self.failed.update(other.failed)
        self.details.update(other.details)

    def to_dict(self) -> dict:
        return {
            "records": self.records,
            "kept": self.kept,
            "filtered": dict(self.filtered),
            "failed": dict(self.failed),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Tally:
        return cls(
            data["records"], data["kept"], Counter(data["filtered"]), Counter(data["failed"]), Counter(data["details"])
        )
