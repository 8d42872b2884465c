"""Atomic writes: a file either holds its complete content or does not exist under its final name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features


def _temporary(path: Path) -> Path:
    # Hidden and without the final suffix, so "*.parquet" globs never see a half-written file.
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_records(path: str | Path, records: list[dict], features: Features) -> None:
    """Write ``records`` as a parquet file carrying ``features`` (so ``load_dataset`` decodes images)."""
    write_table(
        path,
        pa.Table.from_pylist([features.encode_example(record) for record in records], schema=features.arrow_schema),
    )


def write_table(path: str | Path, table: pa.Table) -> None:
    """Write an arrow table as parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
