"""Atomic writes (through :mod:`babyvlm.staging`): a file either holds its complete content or does not exist
under its final name."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from babyvlm.staging import staged_file, write_text


def write_records(path: str | Path, records: list[dict], features: Features) -> None:
    """Write ``records`` as a parquet file carrying ``features`` (so ``load_dataset`` decodes images)."""
    write_table(
        path,
        pa.Table.from_pylist([features.encode_example(record) for record in records], schema=features.arrow_schema),
    )


def write_table(path: str | Path, table: pa.Table) -> None:
    """Write an arrow table as parquet."""
    with staged_file(path) as temporary:
        pq.write_table(table, temporary)


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
