"""Assemble a DevCV dataset folder atomically, for the release builder and the item generators alike.

A folder is written into a hidden sibling staging folder and renamed into place only when complete,
so an interrupted or failed build never leaves a folder that looks finished. The dataset card is
written before the shortcut audit (the audit loads the staged folder through the card's configs,
exactly as users will) and rewritten with the audit table afterwards.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .audit import ShortcutAudit, audit_dataset

CARD_FILE = "README.md"
# In each staging folder: "<host> <pid>" of the build writing it, so a later build can tell a killed build's
# leftovers from a build still running.
STAGING_OWNER_FILE = ".babyvlm-staging-owner"
logger = logging.getLogger(__name__)


@contextmanager
def staged_folder(output_dir: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``output_dir`` when the block succeeds.

    ``output_dir`` must not exist unless ``overwrite`` is set. On any error the staging folder is
    removed and ``output_dir`` is left untouched.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} already exists; pass overwrite=True (--overwrite) to replace it")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(output_dir)
    staging = output_dir.with_name(f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    (staging / STAGING_OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
    try:
        yield staging
        _move_into_place(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_stale_staging(output_dir: Path) -> None:
    """Remove the staging folders of earlier builds of ``output_dir`` whose process is gone (killed, e.g. by SIGKILL
    or an out-of-memory kill, before it could clean up). Folders of a build still running, of another machine, or
    without our owner file are left alone."""
    for folder in output_dir.parent.glob(f".{glob.escape(output_dir.name)}.tmp-*"):
        try:
            host, pid = (folder / STAGING_OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        if host == socket.gethostname() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            logger.warning("removed %s, the staging folder of a build (pid %s) that was killed", folder, pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _move_into_place(staging: Path, output_dir: Path) -> None:
    (staging / STAGING_OWNER_FILE).unlink()
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    previous = output_dir.with_name(f".{output_dir.name}.old-{uuid.uuid4().hex[:8]}")
    output_dir.rename(previous)
    staging.rename(output_dir)
    shutil.rmtree(previous)


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
