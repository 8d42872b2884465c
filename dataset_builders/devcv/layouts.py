"""Find the task files of a released DevCV Toolbox on disk.

The toolbox was released in three layouts (dataset_builders/devcv/README.md, "Input layouts"); one
``SOURCE`` path holds one of them:

- split folders ``<root>/<split>/<task>/data.json`` (the SAYCam release),
- task folders ``<root>/<task>/data.json``, a single split (the public Ego4D test set), or any JSON
  name inside a task folder, as the organisers keep them (``object_counting/count_v2_test.json``,
  ``visual_delay_response/binary_dataset_test.json``: leaderboard runner/config.py DATA_MAP),
  the split then read from the file name,
- flat files ``<root>/<task>_<split>.json`` (or ``<task>.json``, a single split), with images
  under an image root (the JSON's folder unless given).

Looking-While-Listening comes as the organisers' CSV (``baby_winoground/baby_winoground.csv``,
babylmms-eval ``dataset/``), found in a task folder or flat like a JSON file.

The source a file's rows record (``saycam``, ``ego4d``...) is read from its path (:func:`infer_source_name`), and
where no path part names one, from its image names: the organisers' Looking-While-Listening CSV sits in an
lmms-eval ``dataset/`` folder, but its images are SAYCam frames, named after their recording
(:func:`infer_source_from_images`).

Image paths inside a JSON file are relative to its folder for the first two layouts. Which task a
file holds is decided by :mod:`.recognise` from :attr:`TaskFile.names` (and, failing that, its prompts).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePath

from babyvlm.evaluate_metrics.devcv.tasks import canonical_task

from ..saycam.layout import RECORDING_PATTERN
from .limits import InputLimits

KNOWN_SOURCES = ("saycam", "ego4d", "nih", "babyview", "synthetic", "toyworld")
DEFAULT_SPLIT = "test"
# Released folder names -> 🤗 split names.
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
SPLIT_WORDS = ("train", "val", "valid", "validation", "dev", "test")
RELEASED_FILE_NAME = "data.json"
RELEASED_SUFFIXES = (".json", ".csv")


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
    names: tuple[str, ...] = ()
    """Released names that may say the task, most specific first: the file name (split word
    removed) unless it is ``data.json``, then the folder name."""
    limits: InputLimits = InputLimits()
    """Size limits and the symbolic-link rule applied to its items."""


def normalise_split(name: str) -> str:
    """Map a released split name to its 🤗 name (``val`` -> ``validation``); ``ValueError`` if 🤗 would refuse it."""
    split = SPLIT_ALIASES.get(name.lower(), name.lower())
    if not re.fullmatch(r"\w+", split):
        raise ValueError(f"split name {name!r} is not a valid 🤗 split name (letters, digits and underscores only)")
    return split


def _source_in_path(path: Path) -> str | None:
    for part in reversed(path.resolve().parts):
        words = re.split(r"[^a-z0-9]+", part.lower())
        known = [word for word in words if word in KNOWN_SOURCES]
        if part.lower() in KNOWN_SOURCES:
            return part.lower()
        if len(set(known)) == 1:
            return known[0]
    return None


def _unknown_source(path: Path, why: str = "") -> ValueError:
    return ValueError(
        f"cannot tell which source {str(path)!r} comes from (no path part is one of {', '.join(KNOWN_SOURCES)}"
        f"{why}); pass --source-name"
    )


def infer_source_name(path: Path) -> str:
    """The source a released folder belongs to, read from the closest part of its resolved path (links
    followed) that is a known source or holds one as a word: ``ego4d``, ``ego4d_sample``, ``nih_toolbox_sample``,
    a Hub snapshot's ``datasets--wsashawn--devcv_toolbox_ego4d``.

    >>> infer_source_name(Path("/data/website/nih_toolbox_sample/count"))
    'nih'
    """
    source = _source_in_path(path)
    if source is None:
        raise _unknown_source(path)
    return source


def _image_names(path: Path) -> list[str]:
    """The image paths a released file names: its JSON items' ``image`` (a path or a list of them), its CSV's
    ``image`` column; [] for a file that cannot be read as either (the builder reports that file)."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return [row["image"] for row in csv.DictReader(handle) if row.get("image")]
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, csv.Error):
        return []
    names = []
    for item in items if isinstance(items, list) else []:
        image = item.get("image") if isinstance(item, dict) else None
        names += [image] if isinstance(image, str) else [name for name in image or [] if isinstance(name, str)]
    return names


def infer_source_from_images(path: Path) -> str | None:
    """``saycam`` when every image a released file names is a SAYCam frame (its file name starts with a recording
    name, ``S_20141015_2328_02_…``); None otherwise. Only SAYCam names its frames after their recording.
    """
    names = _image_names(path)
    if names and all(RECORDING_PATTERN.match(PurePath(name).name) for name in names):
        return "saycam"
    return None


def _split_from_stem(stem: str, default_split: str) -> tuple[str, str]:
    """``count_v2_test`` -> (``count_v2``, ``test``): the last split word of a file name is its split.

    A name without a split word keeps the default split.
    """
    words = stem.split("_")
    for index in range(len(words) - 1, -1, -1):
        if words[index].lower() in SPLIT_WORDS and len(words) > 1:
            return "_".join(words[:index] + words[index + 1 :]), words[index]
    return stem, default_split


def _task_folder_file(path: Path, split: str | None, default_split: str, source_name: str) -> TaskFile:
    """A file inside a task folder: the folder names the task, a non-``data.json`` file name may too."""
    folder = path.parent.name
    if path.name == RELEASED_FILE_NAME:
        return TaskFile(path, path.parent, folder, normalise_split(split or default_split), source_name, (folder,))
    # The organisers' names carry the split in the file or the folder name (``picture_vocabulary_v2_val/
    # dataset_seen.json``); one folder may hold several tasks' files (``visual_delay_response/
    # {binary,open}_dataset_test.json``).
    stem, stem_split = _split_from_stem(path.stem, _split_from_stem(folder, default_split)[1])
    return TaskFile(
        path, path.parent, f"{folder}/{stem}", normalise_split(split or stem_split), source_name, (stem, folder)
    )


def _released_files(pattern_root: Path, pattern: str) -> list[Path]:
    return sorted(path for suffix in RELEASED_SUFFIXES for path in pattern_root.glob(pattern + suffix))


def find_task_files(
    source: str | Path,
    *,
    split: str = DEFAULT_SPLIT,
    source_name: str | None = None,
    image_root: str | Path | None = None,
) -> list[TaskFile]:
    """List the released task files under ``source`` (a folder in one of the three layouts, or one flat file).

    ``split`` names the split of layouts that have no split folders and of files whose name carries
    none. Task names are returned as spelled; resolving them (and reporting unknown ones) is the
    builder's job. Raises ``FileNotFoundError`` when ``source`` holds none of the layouts.
    """
    source = Path(source)
    source_name = source_name or _source_in_path(source)
    task_files = _task_files(source, split, source_name or "", image_root)
    if source_name is not None:
        return task_files
    # No path part names the source: each file's images may (SAYCam frames).
    inferred = [infer_source_from_images(task_file.path) for task_file in task_files]
    if None in inferred:
        unknown = task_files[inferred.index(None)].path
        raise _unknown_source(source, f", and the images {str(unknown)!r} names are not SAYCam frames")
    return [replace(task_file, source=name) for task_file, name in zip(task_files, inferred)]


def _task_files(source: Path, split: str, source_name: str, image_root: str | Path | None) -> list[TaskFile]:
    """The task files of one ``source`` (see :func:`find_task_files`), each recording ``source_name``."""
    split_layout = [
        path
        for path in _released_files(source, "*/*/*")
        if path.name == RELEASED_FILE_NAME or path.parent.parent.name.lower() in SPLIT_WORDS
    ]
    if source.is_file():
        flat_files = [source]
    elif split_layout:
        return [_task_folder_file(path, path.parent.parent.name, split, source_name) for path in split_layout]
    elif task_layout := _released_files(source, "*/*"):
        return [_task_folder_file(path, None, split, source_name) for path in task_layout]
    else:
        flat_files = _released_files(source, "*")
    if not flat_files:
        raise FileNotFoundError(
            f"no released DevCV files under {str(source)!r}: expected <split>/<task>/{RELEASED_FILE_NAME}, "
            f"<task>/<name>.json, <task>_<split>.json or a Looking-While-Listening .csv"
        )
    task_files = []
    for path in flat_files:
        source_task, file_split = _split_flat_file_name(path.stem, split)
        root = Path(image_root) if image_root is not None else path.parent
        task_files.append(TaskFile(path, root, source_task, normalise_split(file_split), source_name, (source_task,)))
    return task_files


def _split_flat_file_name(stem: str, default_split: str) -> tuple[str, str]:
    """``count_test`` -> (``count``, ``test``); a stem that is itself a task name takes the default split."""
    try:
        canonical_task(stem)
    except KeyError:
        pass
    else:
        return stem, default_split
    task_name, split = _split_from_stem(stem, default_split)
    if task_name != stem:
        return task_name, split
    head, separator, tail = stem.rpartition("_")
    try:  # <task>_<any split name>
        canonical_task(head)
    except KeyError:
        return stem, default_split
    return head, tail
