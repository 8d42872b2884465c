"""Build a DevCV dataset folder (parquet shards + README.md configs + card + build report) from released layouts.

Output layout::

    <output>/README.md                 YAML configs (``all`` = default, one per task) + dataset card
    <output>/build_report.json         every released item: written, or skipped with its reason
    <output>/data/<task>/<split>-00000-of-00001.parquet

The folder is assembled in a hidden sibling folder and renamed into place at the end, so an
interrupted or failed build never leaves a folder that looks complete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.items import check_gold_answers
from babyvlm.evaluate_metrics.devcv.tasks import LOGLIKELIHOOD, DevCVTask, canonical_task
from tqdm.auto import tqdm

from babyvlm.item_ids import DUPLICATE_SEPARATOR, qualified_id
from babyvlm.staging import staged_folder

from .card import first_prompt, render_card
from .folder import fingerprint_shards, write_card_and_audit
from .images import ImageLoader
from .layouts import DEFAULT_SPLIT, TaskFile, find_task_files
from .limits import InputLimits
from .lwl_csv import lwl_entries, read_csv_table
from .recognise import TaskOverrides, resolve_task
from .release import PendingRecord, parse_released_item
from .report import (
    DUPLICATE_ITEM,
    INVALID_ANSWER,
    MALFORMED_FIELD,
    UNREADABLE_FILE,
    BuildReport,
    FileSummary,
    ItemSkipped,
    RenamedItem,
    SkippedFile,
    SkippedItem,
)
from .schema import DEVCV_FEATURES
from .shards import DEFAULT_MAX_SHARD_BYTES, ParquetShardWriter

REPORT_FILE = "build_report.json"
# Columns that say where an item was read, not what it is: two items equal in everything else are one.
_PLACE_COLUMNS = ("id", "original_id", "source", "source_task", "split", "images")


class DevCVBuildError(RuntimeError):
    """A build that produced no dataset; ``report`` says what was read and skipped."""

    def __init__(self, message: str, report: BuildReport):
        super().__init__(message)
        self.report = report


def _read_items(path: Path) -> list:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # 200,000 `[`: recursion
        raise ItemSkipped(UNREADABLE_FILE, f"cannot read JSON: {error}") from None
    if not isinstance(items, list):
        raise ItemSkipped(UNREADABLE_FILE, f"expected a JSON list of items, got {type(items).__name__}")
    return items


def _content_digest(row: dict) -> str:
    """SHA-256 of an item's content and image bytes (whatever its id and file)."""
    digest = hashlib.sha256()
    content = {key: value for key, value in row.items() if key not in _PLACE_COLUMNS}
    digest.update(json.dumps(content, sort_keys=True, ensure_ascii=False).encode())
    for image in row["images"]:
        digest.update(image["bytes"] if image["bytes"] is not None else Path(image["path"]).read_bytes())
    return digest.hexdigest()


# An entry of a task file: (index, released id or None, pending record or why it is skipped).
Entry = tuple[int, object, PendingRecord | ItemSkipped]


def _json_entries(items: list, task: DevCVTask, task_file: TaskFile) -> list[Entry]:
    entries = []
    for index, item in enumerate(items):
        item_id = item.get("id") if isinstance(item, dict) else None
        try:
            entries.append((index, item_id, parse_released_item(item, task, task_file)))
        except ItemSkipped as skipped:
            entries.append((index, item_id, skipped))
    return entries


def _csv_entries(table, task: DevCVTask, task_file: TaskFile) -> list[Entry]:
    """Looking-While-Listening instances of an organisers' CSV; the index is the instance's first line."""
    if task.protocol != LOGLIKELIHOOD:
        raise ItemSkipped(MALFORMED_FIELD, f"a CSV file holds Looking-While-Listening instances, not {task.name}")
    return lwl_entries(table, task, task_file)


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
        # (task, split, written id) -> where the item was read; (task, split, released id) -> {digest: where}
        self._ids: dict[tuple[str, str, str], str] = {}
        self._variants: dict[tuple[str, str, str], dict[str, str]] = {}

    def _entries(self, task_file: TaskFile, source: str, overrides: TaskOverrides) -> tuple[FileSummary, list[Entry]]:
        if task_file.path.suffix.lower() == ".csv":
            table = read_csv_table(task_file.path)
            resolution = resolve_task(task_file, source=source, overrides=overrides, columns=table.header)
            entries = _csv_entries(table, resolution.task, task_file)
        else:
            items = _read_items(task_file.path)
            resolution = resolve_task(task_file, source=source, overrides=overrides, items=items)
            entries = _json_entries(items, resolution.task, task_file)
        summary = FileSummary(
            str(task_file.path),
            task_file.source,
            task_file.source_task,
            resolution.task.name,
            task_file.split,
            items=len(entries),
            task_from=resolution.method,
            task_detail=resolution.detail,
        )
        return summary, entries

    def add_file(self, task_file: TaskFile, source: str, overrides: TaskOverrides) -> None:
        file = str(task_file.path)
        try:
            summary, entries = self._entries(task_file, source, overrides)
        except ItemSkipped as skipped:
            self.report.skipped_files.append(SkippedFile(file, skipped.reason, skipped.detail))
            return
        self.report.files.append(summary)
        task_name = summary.task

        def skip(index: int, item_id, skipped: ItemSkipped) -> None:
            item_id = item_id if isinstance(item_id, str) else None
            self.report.skipped.append(
                SkippedItem(file, index, item_id, task_name, task_file.split, skipped.reason, skipped.detail)
            )

        pending = []
        for index, item_id, record in entries:
            if isinstance(record, ItemSkipped):
                skip(index, item_id, record)
            else:
                pending.append((index, item_id, record))
        loaded = self.loader.load((record.image_files, record.row["image_paths"]) for _, _, record in pending)
        desc = f"{task_file.source}/{task_file.split}/{task_name}"
        for (index, item_id, record), images in tqdm(
            zip(pending, loaded), total=len(pending), desc=desc, disable=not self.progress
        ):
            if isinstance(images, ItemSkipped):
                skip(index, item_id, images)
                continue
            try:
                self._write(task_file, index, {**record.row, "images": images})
            except ItemSkipped as skipped:
                skip(index, item_id, skipped)
            else:
                summary.written += 1

    def _unique_id(self, task_file: TaskFile, index: int, row: dict) -> str:
        """The row's id (:mod:`babyvlm.item_ids`), unique per task and split; ``ItemSkipped`` for a byte-identical
        copy.

        In a build that mixes sources every id names its source. The released Ego4D set has different items
        under one id, and the official harness scores each (dataset_builders/devcv/README.md, "Item ids"): the
        n-th different one becomes ``<id>__<n>``; the released id stays in ``original_id``.
        """
        released = row["original_id"]
        item_id = qualified_id(row["source"], released) if self.report.ids_name_sources else released
        variants = self._variants.setdefault((row["task"], task_file.split, item_id), {})
        digest = _content_digest(row)
        if digest in variants:
            raise ItemSkipped(DUPLICATE_ITEM, f"id {released!r}: identical to the item read from {variants[digest]}")
        new_id, number = item_id, max(2, len(variants) + 1)
        while (row["task"], task_file.split, new_id) in self._ids:
            new_id, number = f"{item_id}{DUPLICATE_SEPARATOR}{number}", number + 1
        if new_id != item_id:
            first = self._ids[row["task"], task_file.split, item_id]
            self.report.renamed.append(RenamedItem(str(task_file.path), index, released, new_id, first))
        variants[digest] = self._ids[row["task"], task_file.split, new_id] = f"{task_file.path}[{index}]"
        return new_id

    def _write(self, task_file: TaskFile, index: int, row: dict) -> None:
        try:
            check_gold_answers(canonical_task(row["task"]), row["answer"])
        except ValueError as error:
            raise ItemSkipped(INVALID_ANSWER, str(error)) from None
        row["id"] = self._unique_id(task_file, index, row)
        task_name = row["task"]
        shard_key = (task_name, task_file.split)
        if shard_key not in self._writers:
            folder = self.staging / "data" / task_name
            self._writers[shard_key] = ParquetShardWriter(folder, task_file.split, DEVCV_FEATURES, self.max_shard_bytes)
        self._writers[shard_key].write(row)
        if task_name not in self.prompts:
            self.prompts[task_name] = first_prompt(row)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def source_names(sources: Sequence[str | Path], source_name: str | Mapping[str, str] | None) -> dict:
    """The source name given for each SOURCE argument (None: inferred from its path)."""
    if source_name is None or isinstance(source_name, str):
        return {str(source): source_name for source in sources}
    unknown = set(source_name) - {str(source) for source in sources}
    if unknown:
        raise ValueError(f"--source-name names {sorted(unknown)}, which are not SOURCE arguments")
    return {str(source): source_name.get(str(source)) for source in sources}


def build_devcv(
    sources: Sequence[str | Path],
    output_dir: str | Path,
    *,
    split: str = DEFAULT_SPLIT,
    source_name: str | Mapping[str, str] | None = None,
    image_root: str | Path | None = None,
    embed_images: bool = True,
    strict: bool = False,
    num_proc: int = 1,
    audit: bool = True,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    progress: bool = True,
    tasks: Sequence[str] = (),
    limits: InputLimits | None = None,
    origins: Sequence[str] = (),
) -> BuildReport:
    """Package released DevCV layouts as a 🤗 dataset folder loadable with ``load_dataset(output_dir, task)``.

    Args:
        sources: released folders (``<split>/<task>/data.json``, ``<task>/data.json``) or flat
            ``<task>_<split>.json`` files / folders of them.
        split: split name for layouts without split folders (the public Ego4D set is ``test``).
        source_name: source recorded in every row, or a mapping from SOURCE arguments (as given) to the source
            of their rows; inferred from the path (``saycam``, ``ego4d``...) where not given.
        image_root: folder the image paths of flat JSON files are relative to (default: the file's folder).
        embed_images: store image bytes in the parquet files (default) or absolute path references.
        strict: fail, writing nothing, if any item or file is skipped.
        num_proc: worker processes that read and decode images.
        audit: run the shortcut audit and put it in the card.
        overwrite: replace an existing ``output_dir``.
        tasks: ``--task`` values: ``TASK`` for every file, ``NAME=TASK`` for the files whose folder,
            file name or SOURCE argument is ``NAME`` (see ``recognise.py``); otherwise the task comes
            from the names, else from the prompts.
        limits: text size limits per field and per item, and whether image paths may be links to
            files outside the data root (default: :class:`~.limits.InputLimits`'s); items over them are skipped.
        origins: where sources were downloaded from (a Hub repo, revision and commit each), for the card.

    Returns the :class:`~.report.BuildReport` (also written as ``build_report.json``). Raises
    :class:`DevCVBuildError` when strict mode finds a skip or nothing could be written.
    """
    overrides = TaskOverrides(tasks)
    names = source_names(sources, source_name)
    task_files = [
        (replace(task_file, limits=limits or InputLimits()), str(source))
        for source in sources
        for task_file in find_task_files(source, split=split, source_name=names[str(source)], image_root=image_root)
    ]
    for task_file, source in task_files:
        overrides.lookup(task_file, source)
    overrides.check_all_used()
    with staged_folder(output_dir, overwrite) as staging:
        with ImageLoader(embed=embed_images, num_proc=num_proc) as loader:
            assembler = _ShardAssembler(staging, loader, max_shard_bytes, progress)
            assembler.report.ids_name_sources = len({task_file.source for task_file, _ in task_files}) > 1
            for task_file, source in task_files:
                assembler.add_file(task_file, source, overrides)
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
        results = write_card_and_audit(
            staging,
            lambda results: render_card(report, sources_used, assembler.prompts, audit=results, origins=origins),
            audit,
        )
        report.audit = None if results is None else [asdict(result) for result in results]
        (staging / REPORT_FILE).write_text(report.to_json(), encoding="utf-8")
    return report
