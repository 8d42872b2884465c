"""Lazy, paged access to a DevCV dataset folder (``babyvlm data devcv`` output).

Nothing is loaded whole: the folder's README ``configs`` name each task's parquet files, an item is
read from its parquet row group with pyarrow (one row group cached per task split), the light
columns used for paging and filtering (``id``, ``answer``) are read alone, and an image is decoded
only when an item is shown.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from babyvlm.evaluate_metrics.data import available_tasks
from babyvlm.evaluate_metrics.devcv.tasks import DevCVTask, canonical_task

REQUIRED_COLUMNS = ("id", "task", "messages", "images", "answer")
INDEX_COLUMNS = ["id", "answer"]


class ExploreError(ValueError):
    """Input the explorer cannot show (not a DevCV folder, a run of another dataset, …); the message is for the page."""


@dataclass(frozen=True)
class MissingImage:
    """An image an item names but whose bytes cannot be had (a path that does not exist, unreadable bytes)."""

    reason: str


def decode_image(value: dict | None, base_dir: Path) -> Image.Image | MissingImage:
    """A parquet ``Image()`` cell (``{"bytes", "path"}``) as a PIL image, or why it cannot be shown."""
    if not value or (value.get("bytes") is None and not value.get("path")):
        return MissingImage("no image bytes or path stored")
    data, path = value.get("bytes"), value.get("path")
    try:
        if data is None:
            # `--image-paths` builds store absolute paths; relative ones are taken from the shard's folder.
            file = Path(path) if Path(path).is_absolute() else base_dir / path
            if not file.is_file():
                return MissingImage(f"image file not found: {file}")
            data = file.read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except (OSError, UnidentifiedImageError) as error:
        return MissingImage(f"unreadable image {path or ''}: {error}".replace("  ", " "))


class TaskSplit:
    """One task's split: its parquet shards, read one row group at a time."""

    def __init__(self, task: DevCVTask, split: str, files: list[Path]):
        self.task, self.split, self.files = task, split, files
        self._group_starts: list[int] = []  # first item of each row group, across the shards in order
        self._group_places: list[tuple[int, int]] = []  # (shard, row group in the shard)
        self._cached_group: tuple[int, list[dict]] | None = None
        self.num_rows = 0
        for file_index, file in enumerate(files):
            try:
                parquet = pq.ParquetFile(file)
            except (OSError, pa.ArrowException) as error:
                raise ExploreError(f"{file} is not a readable parquet file ({error})") from error
            missing = [column for column in REQUIRED_COLUMNS if column not in parquet.schema_arrow.names]
            if missing:
                raise ExploreError(f"{file} is not a DevCV shard: no column {', '.join(missing)}")
            for group in range(parquet.metadata.num_row_groups):
                self._group_starts.append(self.num_rows)
                self._group_places.append((file_index, group))
                self.num_rows += parquet.metadata.row_group(group).num_rows

    def __len__(self) -> int:
        return self.num_rows

    @cached_property
    def index(self) -> list[dict]:
        """``id`` and ``answer`` of every item (the light columns; no image is read)."""
        return [row for file in self.files for row in pq.read_table(file, columns=INDEX_COLUMNS).to_pylist()]

    def row(self, position: int) -> dict:
        """The item at ``position`` with its image cells undecoded (see :meth:`images`)."""
        if not 0 <= position < self.num_rows:
            raise ExploreError(f"{self.task.name}/{self.split} has {self.num_rows} items; there is no item {position}")
        group = bisect.bisect_right(self._group_starts, position) - 1
        if self._cached_group is None or self._cached_group[0] != group:
            file_index, group_in_file = self._group_places[group]
            rows = pq.ParquetFile(self.files[file_index]).read_row_group(group_in_file).to_pylist()
            self._cached_group = (group, rows)
        return self._cached_group[1][position - self._group_starts[group]]

    def images(self, row: dict) -> list[Image.Image | MissingImage]:
        """The item's images in placeholder order, decoded now."""
        return [decode_image(value, self.files[0].parent) for value in row["images"]]


class DevCVFolder:
    """A DevCV dataset folder: its tasks, their splits and items."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ExploreError(f"{self.path} is not a folder")
        try:
            configs = available_tasks(self.path)
        except FileNotFoundError as error:
            raise ExploreError(str(error)) from error
        except Exception as error:  # datasets raises many kinds for an unreadable README or layout
            raise ExploreError(f"{self.path} is not a readable DevCV dataset folder: {error}") from error
        if not configs:
            raise ExploreError(
                f"{self.path} is not a DevCV dataset folder: its README `configs` name no DevCV task "
                "(build one with babyvlm data devcv)"
            )
        self.tasks: dict[str, DevCVTask] = {name: canonical_task(name) for name in configs}
        self._configs = configs
        self._splits: dict[str, dict[str, list[Path]]] = {}
        self._opened: dict[tuple[str, str], TaskSplit] = {}

    def splits(self, task: str) -> list[str]:
        """The splits the task has, as the README ``configs`` list them."""
        if task not in self._splits:
            builder = datasets.load_dataset_builder(str(self.path), self._configs[task])
            data_files = builder.config.data_files or {}
            self._splits[task] = {split: [Path(file) for file in files] for split, files in data_files.items()}
        return list(self._splits[task])

    def open(self, task: str, split: str) -> TaskSplit:
        if task not in self.tasks:
            raise ExploreError(f"{self.path} has no task {task!r} (it has: {', '.join(self.tasks)})")
        if split not in self.splits(task):
            raise ExploreError(f"task {task!r} has no split {split!r} (splits: {', '.join(self.splits(task))})")
        if (task, split) not in self._opened:
            files = self._splits[task][split]
            if not files:
                raise ExploreError(f"task {task!r}, split {split!r}: the README names no parquet file that exists")
            self._opened[task, split] = TaskSplit(self.tasks[task], split, files)
        return self._opened[task, split]
