"""What a released item may be: text size limits and where its image files may really live.

Released JSON is read as given, so a hostile or broken release could carry an 18 MB "question" or an image path
that is a symbolic link to a file elsewhere on the machine (whose bytes would end up embedded in the dataset).
Both are skipped and reported like every other bad item, with the limit or the link named; a real DevCV item is
a few kilobytes of text and its images live under the data root.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .report import PATH_OUTSIDE_ROOT, TOO_LARGE, ItemSkipped

DEFAULT_MAX_TEXT_BYTES = 64 * 1024
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024


@dataclass(frozen=True)
class InputLimits:
    """Limits applied to every released item (``babyvlm data devcv`` options of the same names)."""

    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    """Largest text field (UTF-8 bytes): a prompt, an answer, a note (``--max-text-bytes``)."""
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES
    """Largest item, as JSON (UTF-8 bytes, images not included) (``--max-item-bytes``)."""
    allow_links_outside_root: bool = False
    """Follow image paths whose real location (symbolic links resolved) is outside the data root, e.g. a data
    root whose image folder links to other storage (``--allow-links-outside-root``)."""

    def check_size(self, item) -> None:
        """Raise :class:`~.report.ItemSkipped` (``too_large``) naming the first field, or the item, over a limit."""
        for where, text in _texts(item, ""):
            size = len(text.encode("utf-8", errors="surrogatepass"))
            if size > self.max_text_bytes:
                raise ItemSkipped(
                    TOO_LARGE,
                    f"text field {where or 'item'} is {_size(size)}, over the limit of {_size(self.max_text_bytes)} "
                    "per text field (--max-text-bytes)",
                )
        size = len(json.dumps(item, ensure_ascii=False).encode("utf-8", errors="surrogatepass"))
        if size > self.max_item_bytes:
            raise ItemSkipped(
                TOO_LARGE,
                f"item is {_size(size)} of JSON, over the limit of {_size(self.max_item_bytes)} per item "
                "(--max-item-bytes)",
            )


def check_real_path(released_path: str, file: Path, data_root: Path) -> None:
    """Raise :class:`~.report.ItemSkipped` (``path_outside_root``) when `file`, its links resolved, is not under the
    data root (itself resolved): a link inside the release must not pull in a file from elsewhere.

    A release downloaded from the Hub lies in the Hub cache, whose snapshot files are links to the repository's
    own ``blobs`` folder (``<repo>/snapshots/<commit>/...`` -> ``<repo>/blobs/<sha256>``): those are its files."""
    real_root, real_file = os.path.realpath(data_root), os.path.realpath(file)
    roots = [real_root, *_hub_cache_blobs(Path(real_root))]
    if not any(os.path.commonpath([root, real_file]) == root for root in roots):
        raise ItemSkipped(
            PATH_OUTSIDE_ROOT,
            f"image path {released_path!r} is a symbolic link to {real_file}, outside the data root {real_root} "
            "(pass --allow-links-outside-root to follow such links)",
        )


def _hub_cache_blobs(real_root: Path) -> list[str]:
    """The ``blobs`` folder of the Hub cache repository whose snapshot holds ``real_root``, if it lies in one."""
    parts = real_root.parts
    for index in range(len(parts) - 2, 0, -1):
        if parts[index] == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", parts[index + 1]):
            return [str(Path(*parts[:index], "blobs"))]
    return []


def _texts(value, where: str):
    """(location, string) for every string in a JSON value, e.g. ``conversations[0].value``."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _texts(child, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _texts(child, f"{where}[{index}]")


def _size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.1f} KiB"


__all__ = ["DEFAULT_MAX_ITEM_BYTES", "DEFAULT_MAX_TEXT_BYTES", "InputLimits", "check_real_path"]
