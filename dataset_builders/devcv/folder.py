"""Finish a DevCV dataset folder, for the release builder and the item generators alike.

Both write the folder through :func:`babyvlm.staging.staged_folder` (a hidden sibling renamed into
place only when complete, so an interrupted or failed build never leaves a folder that looks
finished). The dataset card is written before the shortcut audit (the audit loads the staged folder
through the card's configs, exactly as users will) and rewritten with the audit table afterwards.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from .audit import ShortcutAudit, audit_dataset

CARD_FILE = "README.md"


def fingerprint_shards(folder: Path) -> str:
    """SHA-256 over the relative paths and bytes of every parquet shard under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.parquet")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def write_card_and_audit(
    staging: Path, render: Callable[[list[ShortcutAudit] | None], str], audit: bool
) -> list[ShortcutAudit] | None:
    """Write ``render(None)`` as the card, then, when ``audit`` is set, audit the staged folder and
    rewrite the card with the results; returns the audit results (None when not run)."""
    card_path = staging / CARD_FILE
    card_path.write_text(render(None), encoding="utf-8")
    if not audit:
        return None
    # A throw-away cache keeps lock files named after the staging folder out of the user's cache.
    with tempfile.TemporaryDirectory() as cache_dir:
        results = audit_dataset(staging, cache_dir=cache_dir)
    card_path.write_text(render(results), encoding="utf-8")
    return results
