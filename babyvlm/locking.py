"""One writer per output folder: the lock every babyvlm command takes on the folders it writes.

Two runs writing one folder at once mix their results (two evaluations appending to one prediction log, two
trainings saving checkpoints of different parents into one folder). Each writer therefore holds a lock on the
folder for as long as it writes: a second writer is refused with one line naming the holder, and the folder
is never written by two runs.

The lock is the file ``.<name>.lock`` beside the folder (so a folder written through staging, which does not
exist until it is complete, is locked too), held with ``flock``: the kernel releases it when the holder exits,
however it exits (``kill -9``, out of memory), so a lock left by a dead process is recognised without guessing
and taken over with a note. The file holds the holder's pid, host, command and start time for the message.

Taking the lock first checks that the folder can be written where it was asked for
(:func:`check_output_location`): a folder that is a file, lies under a file or in a folder this process cannot
write is named in one line before any work starts, not met as an ``OSError`` deep in the run.

The processes of one distributed launch (``RANK`` > 0) take no lock: rank 0 holds it for the launch. Nested
locks of one process on one folder (a recipe that locks its output folder, then writes it through staging)
are one lock.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp()) / "out"
>>> with output_lock(folder):
...     with output_lock(folder):  # the same process again: one lock
...         pass
...     try:
...         OutputLock(folder).acquire()  # a second writer
...     except OutputLockedError as error:
...         print(str(error).split(" is being written")[0] == str(folder))
True
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)
_held: dict[Path, int] = {}
"""Folders this process holds locks on, with their nesting depth."""


class OutputLockedError(FileExistsError):
    """Another process is writing the output folder."""


class OutputLocationError(ValueError):
    """An output folder cannot be written where it was asked for; the message names the folder and why."""


def check_output_location(folder: str | Path, beside: bool = True) -> None:
    """Raise :class:`OutputLocationError` unless ``folder`` is a folder, or can be created as one, where this process
    can write: in the folder itself where it exists, in the closest folder above it that exists (where its missing
    parents go), and, with ``beside``, in the folder that holds it (where its lock and a staging folder go)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputLocationError(f"output folder {folder} is a file, not a folder")
    existing = folder.absolute().parent if beside else folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputLocationError(f"output folder {folder}: cannot be created, {existing} is a file")
    for place in dict.fromkeys([existing, folder.absolute()] if folder.is_dir() else [existing]):
        try:
            with tempfile.TemporaryFile(dir=place):
                pass
        except OSError as error:
            raise OutputLocationError(
                f"output folder {folder}: {place} is not writable ({error.strerror or error})"
            ) from error


def lock_path(folder: str | Path) -> Path:
    folder = Path(folder).absolute()
    return folder.with_name(f".{folder.name}.lock")


class OutputLock:
    """The lock on one output folder (see the module docstring); :func:`output_lock` is the usual way in."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).absolute()
        self.path = lock_path(self.folder)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputLockedError(f"{self.folder} is being written by {_describe(holder)}") from None
            # The holder before us may have removed the file between our open and our flock: lock the file
            # that is at the path now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_holder(fd)
        if previous:
            logger.warning("%s: took over the lock of %s, which is no longer running", self.folder, _describe(previous))
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv) or sys.executable,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Removed while still held, so nobody can lock the file being removed (acquire checks the inode).
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


@contextmanager
def output_lock(*folders: str | Path) -> Iterator[None]:
    """Hold the locks of ``folders`` for the block; :class:`OutputLockedError` names the holder of a locked one."""
    with ExitStack() as stack:
        for folder in dict.fromkeys(Path(folder).absolute() for folder in folders):
            stack.enter_context(_one_lock(folder))
        yield


@contextmanager
def _one_lock(folder: Path) -> Iterator[None]:
    check_output_location(folder)
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    if folder in _held:
        _held[folder] += 1
        try:
            yield
        finally:
            _held[folder] -= 1
        return
    lock = OutputLock(folder)
    lock.acquire()
    _held[folder] = 1
    try:
        yield
    finally:
        del _held[folder]
        lock.release()


def locks_outputs(folders_of: Callable[..., Iterable[str | Path]]):
    """Decorate a function to hold the locks of ``folders_of(*args, **kwargs)`` while it runs."""

    def decorate(function):
        @functools.wraps(function)
        def locked(*args, **kwargs):
            with output_lock(*folders_of(*args, **kwargs)):
                return function(*args, **kwargs)

        return locked

    return decorate


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another process"
    return (
        f"pid {holder['pid']} on {holder.get('host', '?')} since {holder.get('started', '?')} "
        f"({holder.get('command', '?')})"
    )
