"""Stream schema rows into 🤗-style parquet shards: ``<folder>/<split>-00000-of-00002.parquet``.

Rows are written in row groups as they come, so a build never holds a whole task in memory.
The shard count is only known at the end, hence files are renamed when the writer closes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

ROWS_PER_GROUP = 100  # what 🤗 datasets uses for image datasets: keeps random access cheap
ROW_GROUP_BYTES = 64 << 20
DEFAULT_MAX_SHARD_BYTES = 500 << 20


def _row_bytes(row: dict) -> int:
    """Rough encoded size of a row: its image bytes dominate."""
    return 1024 + sum(len(image["bytes"] or b"") for image in row["images"])


class ParquetShardWriter:
    """Writes the rows of one split of one config, starting a new shard past ``max_shard_bytes``."""

    def __init__(self, folder: Path, split: str, features: Features, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES):
        self.folder = folder
        self.split = split
        self.features = features
        self.max_shard_bytes = max_shard_bytes
        self._shards: list[Path] = []
        self._sink = None
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[dict] = []
        self._buffer_bytes = 0

    def write(self, row: dict) -> None:
        self._buffer.append(self.features.encode_example(row))
        self._buffer_bytes += _row_bytes(row)
        if len(self._buffer) >= ROWS_PER_GROUP or self._buffer_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{self.split}-{len(self._shards):05d}.parquet"
            self._shards.append(path)
            self._sink = path.open("wb")
            self._writer = pq.ParquetWriter(self._sink, self.features.arrow_schema)
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.features.arrow_schema))
        self._buffer, self._buffer_bytes = [], 0
        if self._sink.tell() >= self.max_shard_bytes:
            self._close_shard()

    def _close_shard(self) -> None:
        self._writer.close()
        self._sink.close()
        self._writer = self._sink = None

    def close(self) -> list[Path]:
        """Flush, close and give the shards their final ``-of-`` names; returns them in order."""
        self._flush()
        if self._writer is not None:
            self._close_shard()
        total = len(self._shards)
        final = [
            path.with_name(f"{self.split}-{index:05d}-of-{total:05d}.parquet")
            for index, path in enumerate(self._shards)
        ]
        for path, final_path in zip(self._shards, final):
            path.rename(final_path)
        return final
