"""Read and validate released DevCV items, turning each into a :data:`~.schema.DEVCV_FEATURES` row.

Released item (dataset_builders/devcv/README.md, "The released toolbox"):
``{"id", "conversations": [{"from", "value"}...], "image": [paths]}`` plus optional ``labels`` (memory),
``bb`` (localize), ``notes`` (compare_real), ``gif`` (VDR).
Looking-While-Listening has no released sample; its input layout is ``{"id", "image": [img0, img1],
"phrases": [p0, p1]}`` where phrase j describes image j.

Everything here is structural (no image is opened): images are checked by :mod:`.images`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.tasks import LOGLIKELIHOOD, DevCVTask

from babyvlm.chat import content_to_text, conversations_to_messages, count_image_blocks

from .layouts import TaskFile
from .limits import check_real_path
from .report import (
    MALFORMED_CONVERSATION,
    MALFORMED_FIELD,
    PATH_OUTSIDE_ROOT,
    PLACEHOLDER_MISMATCH,
    ItemSkipped,
)

LWL_KEYS = ("id", "image", "phrases")
# Released optional keys -> dataset columns.
METADATA_COLUMNS = {"labels": "labels", "bb": "bbox", "notes": "notes", "gif": "gif"}
CONVERSATION_KEYS = ("id", "conversations", "image", *METADATA_COLUMNS)

_OPTION_LETTER = re.compile(r"\(([A-Z])\)")
_QUOTED_OPTION = re.compile(r"'([^']+)'")


@dataclass
class PendingRecord:
    """A structurally valid item whose images are still to be checked and encoded."""

    row: dict
    """A schema row without ``images``."""
    image_files: list[Path]
    """Absolute image files, in placeholder order."""


def _empty_metadata() -> dict:
    return {"labels": [], "bbox": [], "notes": "", "gif": ""}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def resolve_image_path(released_path, data_root: Path, allow_links_outside_root: bool = False) -> Path:
    """The file a released image path names, refusing anything that escapes ``data_root``.

    Checked lexically (``..`` parts, absolute paths elsewhere), then on the real path with symbolic
    links resolved, unless ``allow_links_outside_root`` (a data root whose image folders link to
    other storage).
    """
    if not isinstance(released_path, str) or not released_path:
        raise ItemSkipped(MALFORMED_FIELD, f"'image' entries must be non-empty strings, got {released_path!r}")
    if "\0" in released_path:  # no file system allows it; os calls would raise for the whole build
        raise ItemSkipped(MALFORMED_FIELD, f"image path {released_path!r} contains a NUL byte")
    if ".." in Path(released_path).parts:
        raise ItemSkipped(PATH_OUTSIDE_ROOT, f"image path {released_path!r} contains '..'")
    root = os.path.normpath(os.path.abspath(data_root))
    resolved = os.path.normpath(os.path.join(root, released_path))
    if os.path.commonpath([root, resolved]) != root:
        raise ItemSkipped(PATH_OUTSIDE_ROOT, f"image path {released_path!r} lies outside the data root {root}")
    if not allow_links_outside_root:
        check_real_path(released_path, Path(resolved), Path(root))
    return Path(resolved)


def prompt_choices(task: DevCVTask, messages: list[dict]) -> list[str]:
    """The answer options the prompt offers, spelled as the gold answer spells them.

    Letter tasks: the option letters in order of appearance (``(A) ... (B) ...`` -> ``["A", "B"]``);
    direction tasks: the quoted words (``respond ONLY with 'right' or 'left'`` -> ``["right", "left"]``);
    open-number tasks have none.
    """
    pattern = {"letter": _OPTION_LETTER, "direction": _QUOTED_OPTION}.get(task.answer_type)
    if pattern is None:
        return []
    user_text = " ".join(
        block["text"]
        for message in messages
        if message["role"] == "user"
        for block in message["content"]
        if block["type"] == "text"
    )
    return list(dict.fromkeys(pattern.findall(user_text)))


def _item_id(item) -> str:
    if not isinstance(item, dict):
        raise ItemSkipped(MALFORMED_FIELD, f"item must be a JSON object, got {type(item).__name__}")
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ItemSkipped(MALFORMED_FIELD, f"'id' must be a non-empty string, got {item_id!r}")
    return item_id


def _image_files(item: dict, task_file: TaskFile) -> tuple[list[str], list[Path]]:
    released = item.get("image")
    if not isinstance(released, list) or not released:
        raise ItemSkipped(MALFORMED_FIELD, f"'image' must be a non-empty list of relative paths, got {released!r}")
    allow_links = task_file.limits.allow_links_outside_root
    return released, [resolve_image_path(path, task_file.data_root, allow_links) for path in released]


def _messages_and_answers(conversations) -> tuple[list[dict], list[str]]:
    """Chat messages and the gold answers, checking the turns alternate user/assistant and end on an answer."""
    if not isinstance(conversations, list) or not conversations:
        raise ItemSkipped(MALFORMED_CONVERSATION, f"'conversations' must be a non-empty list, got {conversations!r}")
    try:
        messages = conversations_to_messages(conversations)
    except ValueError as error:
        raise ItemSkipped(MALFORMED_CONVERSATION, str(error)) from None
    first_turn = 1 if messages[0]["role"] == "system" else 0
    turns = messages[first_turn:]
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise ItemSkipped(
                MALFORMED_CONVERSATION, f"turn {first_turn + index} is {message['role']!r}, expected {expected!r}"
            )
    if not turns or turns[-1]["role"] != "assistant":
        raise ItemSkipped(MALFORMED_CONVERSATION, "the conversation must end with an assistant (gold answer) turn")
    answers = [content_to_text(message["content"]) for message in turns if message["role"] == "assistant"]
    if not all(answer.strip() for answer in answers):
        raise ItemSkipped(MALFORMED_CONVERSATION, "an assistant turn has an empty gold answer")
    return messages, answers


def _column_value(key: str, value, n_answers: int):
    """A released metadata value in its column form; ``ItemSkipped`` names the key when it is malformed."""
    if key in ("notes", "gif"):
        if isinstance(value, str):
            return value
        expected = "a string"
    elif key == "bb":
        if isinstance(value, list) and len(value) == 4 and all(map(_is_number, value)):
            return [float(number) for number in value]
        expected = "[x, y, w, h] numbers"
    else:  # labels: the object labels of each Memory round
        if isinstance(value, list) and all(
            isinstance(labels, list) and all(isinstance(label, str) for label in labels) for labels in value
        ):
            if len(value) != n_answers:
                raise ItemSkipped(
                    MALFORMED_FIELD, f"'labels' has {len(value)} rounds but the conversation has {n_answers}"
                )
            return value
        expected = "a list of lists of strings"
    raise ItemSkipped(MALFORMED_FIELD, f"{key!r} must be {expected}, got {value!r}")


def _metadata_columns(item: dict, n_answers: int) -> tuple[dict, dict]:
    """Typed metadata columns, plus the released keys no column holds exactly (kept verbatim for ``extra``)."""
    columns = _empty_metadata()
    verbatim = {key: value for key, value in item.items() if key not in CONVERSATION_KEYS}
    for key, column in METADATA_COLUMNS.items():
        if key not in item:
            continue
        if item[key] in ("", []):
            # An empty released value has no column form distinct from "absent": keep it verbatim.
            verbatim[key] = item[key]
        else:
            columns[column] = _column_value(key, item[key], n_answers)
    return columns, verbatim


def _base_row(item_id: str, task: DevCVTask, task_file: TaskFile) -> dict:
    return {
        "id": item_id,
        "original_id": item_id,
        "task": task.name,
        "harness_key": task.harness_key,
        "source": task_file.source,
        "source_task": task_file.source_task,
        "split": task_file.split,
        "provenance": "{}",
    }


def _extra(verbatim: dict) -> str:
    return json.dumps(verbatim, sort_keys=True, ensure_ascii=False)


def _conversation_record(item: dict, item_id: str, task: DevCVTask, task_file: TaskFile) -> PendingRecord:
    image_paths, image_files = _image_files(item, task_file)
    messages, answers = _messages_and_answers(item.get("conversations"))
    placeholders = count_image_blocks(messages)
    if placeholders != len(image_paths):
        raise ItemSkipped(
            PLACEHOLDER_MISMATCH, f"{placeholders} <image> placeholder(s) but {len(image_paths)} image(s)"
        )
    metadata, verbatim = _metadata_columns(item, len(answers))
    row = {
        **_base_row(item_id, task, task_file),
        "messages": messages,
        "answer": answers,
        "choices": prompt_choices(task, messages),
        **metadata,
        "image_paths": image_paths,
        "extra": _extra(verbatim),
    }
    return PendingRecord(row, image_files)


def lwl_record(
    item_id: str, task: DevCVTask, task_file: TaskFile, phrases: list[str], image_paths: list[str], files, extra: str
) -> PendingRecord:
    """A Looking-While-Listening row: no prompt, two images, phrase j describing image j."""
    row = {
        **_base_row(item_id, task, task_file),
        "messages": [],
        "answer": [],
        "choices": phrases,
        **_empty_metadata(),
        "image_paths": image_paths,
        "extra": extra,
    }
    return PendingRecord(row, list(files))


def _lwl_record(item: dict, item_id: str, task: DevCVTask, task_file: TaskFile) -> PendingRecord:
    image_paths, image_files = _image_files(item, task_file)
    phrases = item.get("phrases")
    if len(image_paths) != 2:
        raise ItemSkipped(MALFORMED_FIELD, f"Looking-While-Listening needs exactly 2 images, got {len(image_paths)}")
    if not (isinstance(phrases, list) and len(phrases) == 2 and all(isinstance(p, str) and p for p in phrases)):
        raise ItemSkipped(
            MALFORMED_FIELD, f"'phrases' must be 2 non-empty strings (phrase j describes image j), got {phrases!r}"
        )
    extra = _extra({key: value for key, value in item.items() if key not in LWL_KEYS})
    return lwl_record(item_id, task, task_file, phrases, image_paths, image_files, extra)


def parse_released_item(item, task: DevCVTask, task_file: TaskFile) -> PendingRecord:
    """Validate one released item and convert it to a schema row (images not yet read).

    Raises :class:`~.report.ItemSkipped` with the reason and the offending field.
    """
    item_id = _item_id(item)
    task_file.limits.check_size(item)
    if task.protocol == LOGLIKELIHOOD:  # Looking While Listening: phrases, no conversation
        return _lwl_record(item, item_id, task, task_file)
    return _conversation_record(item, item_id, task, task_file)
