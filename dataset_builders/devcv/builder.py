"""Build a DevCV dataset folder (parquet shards + README.md configs + card + build report) from released layouts.

Output layout::

    <output>/README.md                 YAML configs (``all`` = default, one per task) + dataset card
    <output>/build_report.json         every released item: written, or skipped with its reason
    <output>/data/<task>/<split>-00000-of-00001.parquet

The folder is assembled in a hidden sibling folder and renamed into place at the end, so an
interrupted or failed build never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from .card import first_prompt, render_card
from .folder import fingerprint_shards, staged_folder, write_card_and_audit
from .images import ImageLoader
from .layouts import DEFAULT_SPLIT, TaskFile, find_task_files
from .limits import InputLimits
from .release import PendingRecord, parse_released_item
from .report import (
    DUPLICATE_ID,
    UNKNOWN_TASK,
    UNREADABLE_FILE,
    BuildReport,
    FileSummary,
    ItemSkipped,
    SkippedFile,
    SkippedItem,
)
from .schema import DEVCV_FEATURES
from .shards import DEFAULT_MAX_SHARD_BYTES, ParquetShardWriter
from .tasks import DevCVTask, canonical_task

REPORT_FILE = "build_report.json"


class DevCVBuildError(RuntimeError):
    """A build that produced no dataset; ``report`` says what was read and skipped."""

    def __init__(self, message: str, report: BuildReport):
        super().__init__(message)
        self.report = report


def _read_items(path: Path) -> list:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ItemSkipped(UNREADABLE_FILE, f"cannot read JSON: {error}") from None
    if not isinstance(items, list):
        raise ItemSkipped(UNREADABLE_FILE, f"expected a JSON list of items, got {type(items).__name__}")
    return items


class _ShardAssembler:
    """Validates the items of released task files and streams the good ones into per-task shards."""

    def __init__(self, staging: Path, loader: ImageLoader, max_shard_bytes: int, progress: bool):
        self.staging = staging
        self.loader = loader
        self.max_shard_bytes = max_shard_bytes
        self.progress = progress
        self.report = BuildReport()
        self.prompts: dict[str, str] = {}
        self._writers: dict[tuple[str, str], ParquetShardWriter] = {}
        self._written_ids: dict[tuple[str, str, str], str] = {}

    def add_file(self, task_file: TaskFile) -> None:
        file = str(task_file.path)
        try:
            task = canonical_task(task_file.source_task)
            items = _read_items(task_file.path)
        except KeyError as error:
            self.report.skipped_files.append(SkippedFile(file, UNKNOWN_TASK, error.args[0]))
            return
        except ItemSkipped as skipped:
            self.report.skipped_files.append(SkippedFile(file, skipped.reason, skipped.detail))
            return
        summary = FileSummary(
            file, task_file.source, task_file.source_task, task.name, task_file.split, items=len(items)
        )
        self.report.files.append(summary)

        def skip(index: int, item, skipped: ItemSkipped) -> None:
            item_id = item.get("id") if isinstance(item, dict) else None
            self.report.skipped.append(
                SkippedItem(file, index, item_id, task.name, task_file.split, skipped.reason, skipped.detail)
            )

        pending: list[tuple[int, PendingRecord]] = []
        for index, item in enumerate(items):
            try:
                pending.append((index, parse_released_item(item, task, task_file)))
            except ItemSkipped as skipped:
                skip(index, item, skipped)
        loaded = self.loader.load((record.image_files, record.row["image_paths"]) for _, record in pending)
        desc = f"{task_file.source}/{task_file.split}/{task.name}"
        for (index, record), images in tqdm(
            zip(pending, loaded), total=len(pending), desc=desc, disable=not self.progress
        ):
            if isinstance(images, ItemSkipped):
                skip(index, items[index], images)
                continue
            try:
                self._write(task, task_file, index, {**record.row, "images": images})
            except ItemSkipped as skipped:
                skip(index, items[index], skipped)
            else:
                summary.written += 1

    def _write(self, task: DevCVTask, task_file: TaskFile, index: int, row: dict) -> None:
        # Ids must be unique per task and split: the first written item keeps its id.
        id_key = (task.name, task_file.split, row["id"])
        if id_key in self._written_ids:
            raise ItemSkipped(DUPLICATE_ID, f"id {row['id']!r} already written from {self._written_ids[id_key]}")
        self._written_ids[id_key] = f"{task_file.path}[{index}]"
        shard_key = (task.name, task_file.split)
        if shard_key not in self._writers:
            folder = self.staging / "data" / task.name
            self._writers[shard_key] = ParquetShardWriter(folder, task_file.split, DEVCV_FEATURES, self.max_shard_bytes)
        self._writers[shard_key].write(row)
        if task.name not in self.prompts:
            self.prompts[task.name] = first_prompt(row)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def build_devcv(
    sources: Sequence[str | Path],
    output_dir: str | Path,
    *,
    split: str = DEFAULT_SPLIT,
    source_name: str | None = None,
    image_root: str | Path | None = None,
    embed_images: bool = True,
    strict: bool = False,
    num_proc: int = 1,
    audit: bool = True,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: bool = True,
    limits: InputLimits | None = None,
) -> BuildReport:
    """Package released DevCV layouts as a 🤗 dataset folder loadable with ``load_dataset(output_dir, task)``.

    Args:
        sources: released folders (``<split>/<task>/data.json``, ``<task>/data.json``) or flat
            ``<task>_<split>.json`` files / folders of them.
        split: split name for layouts without split folders (the public Ego4D set is ``test``).
        source_name: source recorded in every row; inferred from the path (``saycam``, ``ego4d``...) if not given.
        image_root: folder the image paths of flat JSON files are relative to (default: the file's folder).
        embed_images: store image bytes in the parquet files (default) or absolute path references.
        strict: fail, writing nothing, if any item or file is skipped.
        num_proc: worker processes that read and decode images.
        audit: run the shortcut audit and put it in the card.
        overwrite: replace an existing ``output_dir``.
        limits: text size limits per field and per item, and whether image paths may be links to
            files outside the data root (default: :class:`~.limits.InputLimits`'s); items over them are skipped.

    Returns the :class:`~.report.BuildReport` (also written as ``build_report.json``). Raises
    :class:`DevCVBuildError` when strict mode finds a skip or nothing could be written.
    """
    task_files = [
        replace(task_file, limits=limits or InputLimits())
        for source in sources
        for task_file in find_task_files(source, split=split, source_name=source_name, image_root=image_root)
    ]
    with staged_folder(output_dir, overwrite) as staging:
        with ImageLoader(embed=embed_images, num_proc=num_proc) as loader:
            assembler = _ShardAssembler(staging, loader, max_shard_bytes, progress)
            for task_file in task_files:
                assembler.add_file(task_file)
            assembler.close()
        report = assembler.report
        if strict and not report.ok:
            raise DevCVBuildError(
                f"strict build: {len(report.skipped)} item(s) and {len(report.skipped_files)} file(s) skipped", report
            )
        if not report.written:
            raise DevCVBuildError("no item could be written", report)
        report.fingerprint = fingerprint_shards(staging)
        sources_used = [summary.source for summary in report.files]
        write_card_and_audit(
            staging, lambda results: render_card(report, sources_used, assembler.prompts, audit=results), audit
        )
        (staging / REPORT_FILE).write_text(report.to_json(), encoding="utf-8")
    return report
