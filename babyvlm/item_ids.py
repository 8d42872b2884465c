"""DevCV item ids: unique within a task and split, and traceable to the release they came from.

The builders write them; evaluation, the explorer and export read them back through :func:`released_id`, the
one place that knows how a written id relates to the released one.

- A build of one source keeps the released ids (``count_131``).
- A build that mixes sources writes every id as ``<source>:<released id>`` (``saycam:count_6``,
  ``ego4d:count_6``): releases of different sources reuse ids, and an id that names its source tells every
  item apart and where it came from, whatever order the sources were read in.
- Two *different* items one source released under one id (the public Ego4D set has such a pair, and the
  official harness scores both) keep both: the n-th becomes ``<id>__<n>``.

The released id always stays in the ``original_id`` column.

>>> qualified_id("ego4d", "count_6")
'ego4d:count_6'
>>> released_id({"id": "ego4d:count_6", "original_id": "count_6"}), released_id({"id": "count_7"})
('count_6', 'count_7')
"""

from __future__ import annotations

SOURCE_SEPARATOR = ":"
DUPLICATE_SEPARATOR = "__"


def qualified_id(source: str, released: str) -> str:
    """The id of an item of ``source`` in a build that mixes sources."""
    return f"{source}{SOURCE_SEPARATOR}{released}"


def released_id(record: dict) -> str:
    """The id the release gave the item (rows made without ``original_id``, older folders or hand-made ones, have
    only ``id``)."""
    return str(record.get("original_id") or record["id"])
