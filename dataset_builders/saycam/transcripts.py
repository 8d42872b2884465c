"""Timed transcripts: one row per utterance with recording, start_ms, end_ms, text and confidence.

Column names are configurable (``columns={"start_ms": "begin"}``); ``confidence`` is optional —
without it the confidence filter is off. Rows that cannot be used become failures naming the row
and the reason: ``malformed_row``, ``bad_recording_name``, ``malformed_timestamps``,
``empty_text``, ``malformed_confidence`` or ``duplicate_utterance`` (same recording and span as an
earlier row: record ids and frame file names are built from the span, so they must be unique).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .layout import parse_recording_name, recording_key
from .report import Failure
from .tables import DEFAULT_ENCODING, MalformedRow, iter_rows, table_columns

FIELDS = ("recording", "start_ms", "end_ms", "text", "confidence")
REQUIRED_FIELDS = FIELDS[:4]


@dataclass(frozen=True)
class Utterance:
    row: int
    """1-based data row of the transcript table."""
    recording: str
    start_ms: int
    end_ms: int
    text: str
    confidence: float | None

    @property
    def id(self) -> str:
        return f"{self.recording}_{self.start_ms}_{self.end_ms}"

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Transcript:
    utterances: list[Utterance]
    failures: list[Failure]
    rows: int
    has_confidence: bool


def resolve_columns(
    path: str | Path, columns: dict[str, str] | None = None, encoding: str = DEFAULT_ENCODING
) -> dict[str, str]:
    """Map each transcript field to its column in ``path``; ``ValueError`` names unknown fields and missing columns."""
    columns = {field: field for field in FIELDS} | dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown transcript field(s) {unknown}; fields are {list(FIELDS)}")
    present = set(table_columns(path, encoding))
    missing = [f"{field} (column {columns[field]!r})" for field in REQUIRED_FIELDS if columns[field] not in present]
    if missing:
        raise ValueError(f"{path}: missing transcript column(s): {', '.join(missing)}; found {sorted(present)}")
    if columns["confidence"] not in present:
        del columns["confidence"]
    return columns


def read_transcripts(
    path: str | Path, columns: dict[str, str] | None = None, encoding: str = DEFAULT_ENCODING
) -> Transcript:
    """Read and validate a transcript table (CSV, JSON lines or parquet, text in `encoding`); bad rows, and rows
    with bytes invalid in `encoding`, become failures."""
    columns = resolve_columns(path, columns, encoding)
    utterances, failures, seen = [], [], set()
    rows = 0
    for rows, raw in enumerate(iter_rows(path, encoding), start=1):
        item = f"{Path(path).name} row {rows}"
        if isinstance(raw, MalformedRow):
            failures.append(Failure(item, "malformed_row", str(raw)))
            continue
        try:
            utterance = _parse_row(rows, raw, columns)
        except _RowError as error:
            failures.append(Failure(f"{item} ({raw.get(columns['recording'])})", error.reason, error.detail))
            continue
        key = (utterance.recording, utterance.start_ms, utterance.end_ms)
        if key in seen:
            failures.append(
                Failure(
                    f"{item} ({utterance.recording})",
                    "duplicate_utterance",
                    f"span {utterance.start_ms}-{utterance.end_ms} ms repeats an earlier row",
                )
            )
            continue
        seen.add(key)
        utterances.append(utterance)
    return Transcript(utterances, failures, rows, has_confidence="confidence" in columns)


class _RowError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _parse_row(row: int, raw: dict, columns: dict[str, str]) -> Utterance:
    recording = raw.get(columns["recording"])
    if not isinstance(recording, str):
        raise _RowError("bad_recording_name", f"recording must be a string, got {recording!r}")
    try:
        name = parse_recording_name(recording_key(recording)).name
    except ValueError as error:
        raise _RowError("bad_recording_name", str(error)) from None

    start, end = _number(raw.get(columns["start_ms"])), _number(raw.get(columns["end_ms"]))
    if start is None or end is None or start < 0 or end <= start:
        raise _RowError(
            "malformed_timestamps", f"start_ms={raw.get(columns['start_ms'])!r} end_ms={raw.get(columns['end_ms'])!r}"
        )

    text = raw.get(columns["text"])
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise _RowError("empty_text", "no text")

    confidence = None
    if "confidence" in columns:
        confidence = _number(raw.get(columns["confidence"]))
        if confidence is None or not 0.0 <= confidence <= 1.0:
            raise _RowError(
                "malformed_confidence", f"confidence={raw.get(columns['confidence'])!r} (expected a number in [0, 1])"
            )
    return Utterance(row, name, round(start), round(end), text, confidence)


def _number(value) -> float | None:
    """A finite number from a number or a numeric string; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
