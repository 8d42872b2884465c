"""Read the small tables users give the builder (transcripts, children) from CSV, JSON lines or parquet.

Text tables are decoded with ``encoding`` (UTF-8 by default, a byte-order mark allowed). A row holding bytes that
are not valid in that encoding becomes a :class:`MalformedRow` naming its line and column, so one stray byte skips
one row instead of stopping the build.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")
DEFAULT_ENCODING = "utf-8"


class MalformedRow(str):
    """Stands in for a row that could not be parsed at all; the string says why."""


def table_columns(path: str | Path, encoding: str = DEFAULT_ENCODING) -> list[str]:
    """Column names of a table (for JSON lines: the keys of the first parseable row)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".parquet":
        return pq.read_schema(path).names
    if suffix == ".csv":
        with _open_text(path, encoding) as handle:
            return next(csv.reader(handle), [])
    return next((list(row) for row in iter_rows(path, encoding) if not isinstance(row, MalformedRow)), [])


def iter_rows(path: str | Path, encoding: str = DEFAULT_ENCODING) -> Iterator[dict | MalformedRow]:
    """Yield every row as a dict (CSV values are strings); rows that cannot be parsed or decoded yield a
    :class:`MalformedRow`."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    elif suffix == ".csv":
        with _open_text(path, encoding) as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                bad = next(((key, value) for key, value in row.items() if _undecoded(value)), None)
                yield MalformedRow(_decoding_error(reader.line_num, encoding, *bad)) if bad else row
    else:
        with _open_text(path, encoding) as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if _undecoded(line):
                    yield MalformedRow(_decoding_error(line_number, encoding, None, line))
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    yield MalformedRow(f"line {line_number}: invalid JSON ({error.msg})")
                    continue
                yield row if isinstance(row, dict) else MalformedRow(f"line {line_number}: not a JSON object")


def _open_text(path: Path, encoding: str):
    """`path` opened for reading text; bytes invalid in `encoding` become lone surrogates (`surrogateescape`), so
    the rows holding them can be named and skipped."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    codec = "utf-8-sig" if codec == "utf-8" else codec  # a byte-order mark is not part of the first column
    return open(path, newline="", encoding=codec, errors="surrogateescape")


def _undecoded(value) -> bool:
    return isinstance(value, str) and any("\udc80" <= character <= "\udcff" for character in value)


def _decoding_error(line: int, encoding: str, column: str | None, value: str) -> str:
    position, character = next((i, c) for i, c in enumerate(value) if "\udc80" <= c <= "\udcff")
    where = f"column {column!r}, " if column is not None else ""
    return (
        f"line {line}: {where}character {position + 1} is byte 0x{ord(character) - 0xDC00:02x}, not valid {encoding}; "
        "pass the file's encoding with --encoding (e.g. latin-1, cp1252)"
    )


def _suffix(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: unsupported table format {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")
    return suffix
