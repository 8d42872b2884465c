"""Content digests of the files a run reads, so that a resumed run is tied to content, not to paths.

A model folder whose weights were replaced in place, or a dataset folder rebuilt under the same name, keeps its
paths: only the bytes tell the runs apart. :func:`file_digests` hashes them (SHA-256) and remembers each file's
digest under its identity (size, modification and change times, inode) in a cache file of the run's folder, so
a resumed run rehashes only what changed: a file rewritten in place or replaced by a rename gets a new change
time or inode, which the user cannot set back, so a cached digest is never reused for new bytes.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "weights.bin").write_bytes(b"abc")
>>> file_digests({"weights.bin": folder / "weights.bin"}, folder / "cache.json")["weights.bin"][:12]
'ba7816bf8f01'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from .staging import write_text

DIGEST_CACHE_FILE = ".content-digests.json"
"""The cache of :func:`file_digests` in a run's folder."""


def _identity(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def file_digests(files: Mapping[str, Path], cache_file: Path) -> dict[str, str]:
    """SHA-256 of each of ``files`` (name -> path), keyed by the names; digests of unchanged files come from
    ``cache_file`` (updated for the others)."""
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    digests, changed = {}, False
    for name, path in files.items():
        key = str(Path(path).resolve())
        identity = _identity(Path(path))
        cached = cache.get(key)
        if isinstance(cached, dict) and cached.get("identity") == identity:
            digests[name] = cached["sha256"]
            continue
        with open(path, "rb") as handle:
            digests[name] = hashlib.file_digest(handle, "sha256").hexdigest()
        cache[key] = {"identity": identity, "sha256": digests[name]}
        changed = True
    if changed:
        write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return digests


def model_files(folder: Path) -> dict[str, Path]:
    """The files of a model folder that decide its answers: every top-level file but cards and hidden files
    (weights, configs, tokenizer and processor files)."""
    return {
        path.name: path
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".") and path.suffix != ".md"
    }
