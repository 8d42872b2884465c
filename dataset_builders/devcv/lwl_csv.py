"""The organisers' Looking-While-Listening CSV as DevCV rows.

Layout (babylmms-eval ``dataset/baby_winoground/baby_winoground.csv``): a header
``instance_id, positive_phrase, negative_phrase, image, image_tag`` and, per instance, one row
tagged ``positive`` and one tagged ``negative``, both repeating the two phrases. The harness reads
each image from ``positive_images/`` or ``negative_images/`` beside the CSV by its tag
(``lmms_eval/tasks/baby_winoground/utils.py``, ``baby_winoground_doc_to_visual``); an image lying
directly beside the CSV is accepted too.

The harness scores image 0 = the positive row's image and phrase 0 = ``positive_phrase``
(``baby_winoground_doc_to_choice`` and ``_process_results``), which is the DevCV row convention
(phrase j describes image j): ``images``/``image_paths`` = [positive, negative], ``choices`` =
[positive_phrase, negative_phrase], and ``extra`` records the tags in that order.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.tasks import DevCVTask

from .layouts import TaskFile
from .release import PendingRecord, lwl_record, resolve_image_path
from .report import MALFORMED_FIELD, MISSING_IMAGE, UNREADABLE_FILE, ItemSkipped

LWL_CSV_COLUMNS = ("instance_id", "positive_phrase", "negative_phrase", "image", "image_tag")
IMAGE_TAGS = ("positive", "negative")


@dataclass
class CsvTable:
    header: list[str]
    rows: list[tuple[int, list[str]]]
    """(line number, fields) of every non-blank data row."""


def read_csv_table(path: Path) -> CsvTable:
    """The header and rows of a CSV file; ``ItemSkipped(unreadable_file)`` naming the line that fails."""
    try:
        reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
        header = [name.strip() for name in next(reader, [])]
        rows = [(reader.line_num, fields) for fields in reader if any(field.strip() for field in fields)]
    except (OSError, UnicodeDecodeError) as error:
        raise ItemSkipped(UNREADABLE_FILE, f"cannot read CSV: {error}") from None
    except csv.Error as error:
        raise ItemSkipped(UNREADABLE_FILE, f"line {reader.line_num}: {error}") from None
    if not any(header):
        raise ItemSkipped(UNREADABLE_FILE, "empty CSV: no header row")
    return CsvTable(header, rows)


def _image(name: str, tag: str, line: int, task_file: TaskFile) -> tuple[str, Path]:
    """The released relative path and file of an instance image: beside the CSV or in ``<tag>_images/``."""
    candidates = [name, f"{tag}_images/{name}"]
    for relative in candidates:
        file = resolve_image_path(relative, task_file.data_root, task_file.limits.allow_links_outside_root)
        if file.is_file():
            return relative, file
    raise ItemSkipped(MISSING_IMAGE, f"line {line}: image {name!r} is neither at {' nor at '.join(candidates)}")


def _instance(instance_id: str, rows: list[tuple[int, dict]], task: DevCVTask, task_file: TaskFile) -> PendingRecord:
    """The record of one instance; ``ItemSkipped`` naming the lines at fault."""
    lines = ", ".join(str(line) for line, _ in rows)
    by_tag: dict[str, tuple[int, dict]] = {}
    for line, row in rows:
        try:
            task_file.limits.check_size(row)
        except ItemSkipped as skipped:
            raise ItemSkipped(skipped.reason, f"line {line}: {skipped.detail}") from None
        tag = row["image_tag"].strip().lower()
        if tag not in IMAGE_TAGS:
            raise ItemSkipped(MALFORMED_FIELD, f"line {line}: image_tag {row['image_tag']!r} is not positive/negative")
        if tag in by_tag:
            raise ItemSkipped(MALFORMED_FIELD, f"lines {by_tag[tag][0]} and {line}: two {tag} rows for one instance")
        for column in LWL_CSV_COLUMNS:
            if not row[column].strip():
                raise ItemSkipped(MALFORMED_FIELD, f"line {line}: empty {column}")
        by_tag[tag] = line, row
    missing = [tag for tag in IMAGE_TAGS if tag not in by_tag]
    if missing:
        raise ItemSkipped(MALFORMED_FIELD, f"line(s) {lines}: instance {instance_id!r} has no {missing[0]} row")
    phrases = {tuple(row[column].strip() for column in LWL_CSV_COLUMNS[1:3]) for _, row in by_tag.values()}
    if len(phrases) != 1:
        raise ItemSkipped(MALFORMED_FIELD, f"lines {lines}: the two rows of instance {instance_id!r} differ in phrases")
    images = [_image(by_tag[tag][1]["image"].strip(), tag, by_tag[tag][0], task_file) for tag in IMAGE_TAGS]
    extra = json.dumps({"image_tags": list(IMAGE_TAGS)})
    paths, files = [path for path, _ in images], [file for _, file in images]
    return lwl_record(instance_id, task, task_file, list(next(iter(phrases))), paths, files, extra)


def lwl_entries(
    table: CsvTable, task: DevCVTask, task_file: TaskFile
) -> list[tuple[int, str | None, PendingRecord | ItemSkipped]]:
    """Per instance, and per row no instance can take: (first line, instance id, its record or the
    ``ItemSkipped`` naming the lines at fault). The rows of one instance need not be adjacent."""
    missing = [column for column in LWL_CSV_COLUMNS if column not in table.header]
    if missing:
        raise ItemSkipped(MALFORMED_FIELD, f"the header lacks column(s) {', '.join(missing)}")
    entries: list = []
    groups: dict[str, list[tuple[int, dict]]] = {}
    for line, fields in table.rows:
        row = dict(zip(table.header, fields))
        if len(fields) != len(table.header):
            detail = f"line {line}: {len(fields)} fields, the header has {len(table.header)}"
            entries.append((line, row.get("instance_id"), ItemSkipped(MALFORMED_FIELD, detail)))
        elif not row["instance_id"].strip():
            entries.append((line, None, ItemSkipped(MALFORMED_FIELD, f"line {line}: empty instance_id")))
        else:
            groups.setdefault(row["instance_id"].strip(), []).append((line, row))
    for instance_id, rows in groups.items():
        try:
            entries.append((rows[0][0], instance_id, _instance(instance_id, rows, task, task_file)))
        except ItemSkipped as skipped:
            entries.append((rows[0][0], instance_id, skipped))
    return sorted(entries, key=lambda entry: entry[0])
