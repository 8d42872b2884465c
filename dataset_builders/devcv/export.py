"""Write a DevCV dataset back to the released JSON layout: the proof that the packaging is lossless.

``<output>/<source>/<split>/<source_task>/data.json`` (``<folder>/<name>.json`` for a file the
organisers named inside a task folder) plus every image at its released relative path beside it.
Each exported item equals the released one (same keys and values, the released id), and each image
file has the released bytes. Not reproduced: the JSON key order inside an item, the VDR ``gif``
preview files (only their paths are packaged), and the Looking-While-Listening CSV (its instances
are exported in the JSON layout ``{"id", "image", "phrases"}``, the tags in ``image_tags``).
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.tasks import LOGLIKELIHOOD, canonical_task

from babyvlm.chat import messages_to_conversations
from babyvlm.item_ids import released_id
from babyvlm.staging import write_text

from .layouts import RELEASED_FILE_NAME
from .release import METADATA_COLUMNS, resolve_image_path
from .report import ItemSkipped
from .stream import iter_undecoded_rows

# 🤗 split names -> the folder names of the release.
RELEASE_SPLIT_NAMES = {"validation": "val"}


def record_to_released_item(row: dict) -> dict:
    """Rebuild the released JSON item of one dataset row (inverse of :func:`~.release.parse_released_item`)."""
    released = released_id(row)
    if canonical_task(row["task"]).protocol == LOGLIKELIHOOD:
        item = {"id": released, "image": list(row["image_paths"]), "phrases": list(row["choices"])}
    else:
        item = {
            "id": released,
            "conversations": messages_to_conversations(row["messages"]),
            "image": list(row["image_paths"]),
        }
        for key, column in METADATA_COLUMNS.items():
            if row[column]:
                item[key] = row[column]
    item.update(json.loads(row["extra"]))
    return item


def _write_image(image: dict, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if image["bytes"] is not None:
        target.write_bytes(image["bytes"])
    else:
        shutil.copyfile(image["path"], target)


def export_rows(rows: Iterable[dict], output_dir: str | Path) -> list[Path]:
    """Write rows (``images`` undecoded) in the released layout; returns the ``data.json`` files written."""
    output_dir = Path(output_dir)
    items_by_file: dict[Path, list[dict]] = defaultdict(list)
    for row in rows:
        split = RELEASE_SPLIT_NAMES.get(row["split"], row["split"])
        # ``folder/name`` (a named file in a task folder, as the organisers keep them) goes back to
        # ``<folder>/<name>.json``, where the builder reads it again; a plain task name to ``<task>/data.json``.
        folder, _, name = row["source_task"].partition("/")
        task_folder = output_dir / row["source"] / split / folder
        for released_path, image in zip(row["image_paths"], row["images"]):
            try:
                target = resolve_image_path(released_path, task_folder)
            except ItemSkipped as error:
                raise ValueError(f"row {row['id']!r} ({row['task']}): {error.detail}") from None
            _write_image(image, target)
        items_by_file[task_folder / (f"{name}.json" if name else RELEASED_FILE_NAME)].append(
            record_to_released_item(row)
        )
    # Each item file appears whole, after its images: a task folder with a data.json is a complete one.
    for path, items in items_by_file.items():
        write_text(path, json.dumps(items, indent=2, ensure_ascii=False) + "\n")
    return sorted(items_by_file)


def export_release(dataset_dir: str | Path, output_dir: str | Path, config: str | None = None) -> list[Path]:
    """Export a DevCV dataset folder (default config ``all``) to the released layout under ``output_dir``."""
    return export_rows(iter_undecoded_rows(dataset_dir, config), output_dir)
