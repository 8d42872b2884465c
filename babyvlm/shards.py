"""A dataset split stored as ``<name>-00000-of-00003.parquet`` shards is read whole or not at all.

A deleted shard leaves a folder that still loads, with a part of its items and no warning: evaluation would score
and training would learn on what is left. :func:`check_complete_shards` refuses a list of data files in which a
numbered shard set lacks a member, naming the missing files.

>>> check_complete_shards(["d/test-00000-of-00002.parquet", "d/test-00001-of-00002.parquet", "d/x.parquet"], "d")
>>> try:
...     check_complete_shards(["d/a-00001-of-00002.parquet"], "dataset d")
... except IncompleteShardsError as error:
...     print(error)
dataset d: 1 of the 2 shards of d/a-*-of-00002.parquet are missing (a-00000-of-00002.parquet)
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import PurePath

SHARD_NAME = re.compile(r"(?P<stem>.+)-(?P<index>\d+)-of-(?P<count>\d+)(?P<suffix>\.[\w.]+)")


class IncompleteShardsError(FileNotFoundError):
    """A numbered shard set (``-of-N``) lacks some of its N files."""


def check_complete_shards(files: Iterable[str | PurePath], source: str) -> None:
    """Raise :class:`IncompleteShardsError` (prefixed with ``source``) when a ``-of-N`` set among ``files`` lacks
    a member; files without a shard number are not checked."""
    sets: dict[tuple, set[int]] = defaultdict(set)
    widths: dict[tuple, int] = {}
    for file in files:
        path = PurePath(str(file))
        match = SHARD_NAME.fullmatch(path.name)
        if match is None:
            continue
        key = (str(path.parent), match["stem"], match["count"], match["suffix"])
        sets[key].add(int(match["index"]))
        widths[key] = len(match["index"])
    for key, present in sets.items():
        parent, stem, count, suffix = key
        missing = [index for index in range(int(count)) if index not in present]
        if missing:
            names = [f"{stem}-{index:0{widths[key]}d}-of-{count}{suffix}" for index in missing]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise IncompleteShardsError(
                f"{source}: {len(missing)} of the {int(count)} shards of {PurePath(parent, stem)}-*-of-{count}{suffix} "
                f"are missing ({shown})"
            )
