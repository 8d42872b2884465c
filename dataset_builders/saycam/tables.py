"""Read the small tables users give the builder (transcripts, children) from CSV, JSON lines or parquet."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")


class MalformedRow(str):
    """Stands in for a row that could not be parsed at all; the string says why."""


def table_columns(path: str | Path) -> list[str]:
    """Column names of a table (for JSON lines: the keys of the first parseable row)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".parquet":
        return pq.read_schema(path).names
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    return next((list(row) for row in iter_rows(path) if not isinstance(row, MalformedRow)), [])


def iter_rows(path: str | Path) -> Iterator[dict | MalformedRow]:
    """Yield every row as a dict (CSV values are strings); unparseable JSON lines yield a :class:`MalformedRow`."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            yield from csv.DictReader(handle)
    else:
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    yield MalformedRow(f"line {line_number}: invalid JSON ({error.msg})")
                    continue
                yield row if isinstance(row, dict) else MalformedRow(f"line {line_number}: not a JSON object")


def _suffix(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: unsupported table format {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")
    return suffix
