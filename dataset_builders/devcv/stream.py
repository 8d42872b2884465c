"""Stream the rows of a DevCV dataset folder without decoding its images (audit and export need bytes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from datasets import Image, List, load_dataset

from babyvlm.dataset_card import check_card_header


def iter_undecoded_rows(
    path: str | Path, config: str | None = None, columns: list[str] | None = None, cache_dir: str | Path | None = None
) -> Iterator[dict]:
    """Every row of every split of ``config`` (default: the dataset's default config, ``all``).

    Streams from the parquet files (no Arrow cache is written, only lock files in ``cache_dir``);
    ``images`` come as ``{"bytes", "path"}`` dicts.
    """
    check_card_header(path)
    cache_dir = None if cache_dir is None else str(cache_dir)
    for name, split in load_dataset(str(path), config, streaming=True, cache_dir=cache_dir).items():
        if split.features is None or "images" not in split.features:
            found = "no known columns" if split.features is None else "columns " + ", ".join(split.features)
            raise ValueError(f"{path}: not a DevCV dataset folder (its {name} split has {found}, no images)")
        if columns is not None:
            split = split.select_columns(columns)
        yield from split.cast_column("images", List(Image(decode=False)))
