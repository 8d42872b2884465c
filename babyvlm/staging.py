"""Write to a temporary place, then rename: the one way babyvlm writes files and folders that others read.

Everything babyvlm writes for later use (dataset folders, converted checkpoints, the toy world, lmms-eval
task folders, vision checkpoints, evaluation reports, SAYCam corpora) is written under a hidden sibling
name and renamed into place only when complete, so an interrupted or failed run never leaves a file or
folder that looks finished, and a reader never sees one half-written. A disk that fills up meanwhile is
named with the folder or file in one error (:class:`~babyvlm.locking.OutputLocationError`).

A staging folder holds an owner file ("<host> <pid>"): a later run for the same target removes the
staging folders of runs that were killed (SIGKILL, out of memory) before they could clean up, and leaves
those of a run still going alone. While it writes, the run holds the target's output lock
(:mod:`babyvlm.locking`), so two runs never write one target at once.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> with staged_folder(root / "out") as staging:
...     _ = (staging / "data.txt").write_text("complete")
>>> sorted(path.name for path in root.iterdir()), (root / "out" / "data.txt").read_text()
(['out'], 'complete')
>>> with staged_file(root / "report.json") as temporary:
...     _ = temporary.write_text("{}")
>>> sorted(path.name for path in root.iterdir())
['out', 'report.json']
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .locking import OutputLocationError, check_output_location, output_lock

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
"""The errors of a device (or a quota) that ran out of space while a folder or file was written."""
STAGING_OWNER_FILE = ".babyvlm-staging-owner"
"""In each staging folder: "<host> <pid>" of the run writing it (removed before the rename)."""
logger = logging.getLogger(__name__)


@contextmanager
def staged_folder(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder that replaces the folder ``target`` when the block succeeds.

    ``target`` must not exist unless ``overwrite`` is set (and then it must be a folder), and must lie where this
    process can write (:func:`babyvlm.locking.check_output_location`). On any error the
    staging folder is removed and ``target`` is left untouched. The block holds ``target``'s output lock
    (:mod:`babyvlm.locking`): a second writer of the same folder is refused.
    """
    target = Path(target)
    with output_lock(target):
        if target.exists() and not overwrite:  # (a file in its place is refused by the lock)
            raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(target)
        staging = _staging_name(target)
        staging.mkdir()
        try:
            (staging / STAGING_OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
            yield staging
            (staging / STAGING_OWNER_FILE).unlink()
            move_into_place(staging, target)
        except BaseException as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise_if_disk_full(error, f"output folder {target}")
            raise


@contextmanager
def staged_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` that replaces ``target`` (atomically) when the block succeeds.

    The temporary file is removed on any error; ``target`` keeps its previous content, if any. A folder ``target``
    cannot be written in is named first (:func:`babyvlm.locking.check_output_location`).
    """
    target = Path(target)
    check_output_location(target.parent, beside=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _staging_name(target)
    try:
        yield temporary
        os.replace(temporary, target)
    except Exception as error:
        raise_if_disk_full(error, str(target))
        raise
    finally:
        temporary.unlink(missing_ok=True)


def raise_if_disk_full(error: BaseException, what: str) -> None:
    """Raise :class:`~babyvlm.locking.OutputLocationError` naming ``what`` if ``error`` is the disk (or a quota)
    running out; a library that raises its own error (safetensors, pyarrow) keeps the system's message in it."""
    reasons = [os.strerror(code) for code in DISK_FULL]
    code = getattr(error, "errno", None)
    reason = os.strerror(code) if code in DISK_FULL else next((r for r in reasons if r in str(error)), None)
    if reason is not None:
        raise OutputLocationError(f"{what}: {reason.lower()}, nothing was written") from error


def write_text(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` through :func:`staged_file`."""
    with staged_file(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def remove_stale_staging(target: str | Path) -> None:
    """Remove the staging folders of earlier runs for ``target`` whose process is gone. Folders of a run still
    going, of another machine, or without an owner file are left alone."""
    target = Path(target)
    for folder in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        try:
            host, pid = (folder / STAGING_OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        if host == socket.gethostname() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            logger.warning("removed %s, the staging folder of a run (pid %s) that was killed", folder, pid)


def _staging_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def move_into_place(staging: Path, target: Path) -> None:
    """Rename the complete folder ``staging`` to ``target``, replacing a previous ``target`` (for writers that
    cannot use :func:`staged_folder`, such as the processes of one training launch writing one folder)."""
    if not target.exists():
        staging.rename(target)
        return
    previous = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous)
