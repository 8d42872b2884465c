"""Find the task files of a released DevCV Toolbox on disk.

The toolbox was released in three layouts (REFERENCE §5); one ``SOURCE`` path holds one of them:

- split folders ``<root>/<split>/<task>/data.json`` (the SAYCam release),
- task folders ``<root>/<task>/data.json``, a single split (the public Ego4D test set),
- flat files ``<root>/<task>_<split>.json`` (or ``<task>.json``, a single split), with images
  under an image root (the JSON's folder unless given).

Image paths inside ``data.json`` are relative to the task folder for the first two layouts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .limits import InputLimits
from .tasks import canonical_task

KNOWN_SOURCES = ("saycam", "ego4d", "nih", "babyview", "synthetic", "toyworld")
DEFAULT_SPLIT = "test"
# Released folder names -> 🤗 split names.
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
RELEASED_FILE_NAME = "data.json"


@dataclass(frozen=True)
class TaskFile:
    """One released JSON list of items, with everything needed to read its images."""

    path: Path
    data_root: Path
    """Folder the item image paths are relative to; no image may lie outside it."""
    source_task: str
    """The task name as the release spells it (folder or file name), e.g. ``vdr-binary``."""
    split: str
    source: str
    limits: InputLimits = InputLimits()
    """Size limits and the symbolic-link rule applied to its items."""


def normalise_split(name: str) -> str:
    """Map a released split name to its 🤗 name (``val`` -> ``validation``); ``ValueError`` if 🤗 would refuse it."""
    split = SPLIT_ALIASES.get(name.lower(), name.lower())
    if not re.fullmatch(r"\w+", split):
        raise ValueError(f"split name {name!r} is not a valid 🤗 split name (letters, digits and underscores only)")
    return split


def infer_source_name(path: Path) -> str:
    """The source a released folder belongs to, read from the closest path part naming a known source."""
    for part in reversed(path.resolve().parts):
        if part.lower() in KNOWN_SOURCES:
            return part.lower()
    raise ValueError(
        f"cannot tell which source {str(path)!r} comes from (no path part is one of {', '.join(KNOWN_SOURCES)}); "
        "pass --source-name"
    )


def _split_flat_file_name(stem: str, default_split: str) -> tuple[str, str]:
    """``count_test`` -> (``count``, ``test``); a stem that is itself a task name takes the default split."""
    try:
        canonical_task(stem)
    except KeyError:
        head, separator, tail = stem.rpartition("_")
        return (head, tail) if separator else (stem, default_split)
    return stem, default_split


def find_task_files(
    source: str | Path,
    *,
    split: str = DEFAULT_SPLIT,
    source_name: str | None = None,
    image_root: str | Path | None = None,
) -> list[TaskFile]:
    """List the released task files under ``source`` (a folder in one of the three layouts, or one flat JSON file).

    ``split`` names the split of layouts that have no split folders. Task names are returned as
    spelled; resolving them (and reporting unknown ones) is the builder's job. Raises
    ``FileNotFoundError`` when ``source`` holds none of the layouts.
    """
    source = Path(source)
    source_name = source_name or infer_source_name(source)
    if source.is_file():
        flat_files = [source]
    elif split_layout := sorted(source.glob(f"*/*/{RELEASED_FILE_NAME}")):
        return [
            TaskFile(path, path.parent, path.parent.name, normalise_split(path.parent.parent.name), source_name)
            for path in split_layout
        ]
    elif task_layout := sorted(source.glob(f"*/{RELEASED_FILE_NAME}")):
        return [
            TaskFile(path, path.parent, path.parent.name, normalise_split(split), source_name) for path in task_layout
        ]
    else:
        flat_files = sorted(source.glob("*.json"))
    if not flat_files:
        raise FileNotFoundError(
            f"no released DevCV files under {str(source)!r}: expected <split>/<task>/{RELEASED_FILE_NAME}, "
            f"<task>/{RELEASED_FILE_NAME} or <task>_<split>.json"
        )
    task_files = []
    for path in flat_files:
        source_task, file_split = _split_flat_file_name(path.stem, split)
        root = Path(image_root) if image_root is not None else path.parent
        task_files.append(TaskFile(path, root, source_task, normalise_split(file_split), source_name))
    return task_files
