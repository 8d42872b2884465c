"""The Hugging Face Hub as a source and a destination: dataset snapshots in, one-commit uploads out.

Everything babyvlm reads from or writes to the Hub goes through here (checkpoints through
:mod:`babyvlm.checkpoint_sources`, whose error handling this module shares):

- :func:`dataset_snapshot` downloads a dataset repository ``REPO_ID[@REVISION]`` with
  ``snapshot_download``, so the user's cache, token and offline mode (``HF_HUB_OFFLINE=1``: cached
  files only) apply as everywhere in the ecosystem;
- :func:`upload` puts a set of files into a repository as **one commit** (``create_commit`` with
  ``CommitOperationAdd``: the Hub applies a commit whole or not at all), creating the repository and
  setting its gating first, so no file is ever readable without the gate. Transient failures (5xx, 429,
  connection errors) are retried with backoff; when the upload still fails, a repository this upload
  created is deleted again and a gating it changed is restored, and :class:`HubUploadError` says what
  the remote holds now. With ``revision`` the commit goes to that branch (created from ``main`` when missing), and
  with ``replace`` it also deletes what the revision holds beyond ``files``, so the revision is exactly them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RemoteEntryNotFoundError

from .checkpoint_sources import commit_of, hub_errors, is_repo_id

GATING = "manual"
"""The gating babyvlm sets when asked: every access request is approved by the repository's owners."""
RETRIES = 4
BACKOFF_SECONDS = 2.0
T = TypeVar("T")


class HubUploadError(RuntimeError):
    """An upload that did not land; the message says what the remote repository holds now."""


@dataclass(frozen=True)
class DatasetSnapshot:
    """A dataset repository in the Hub cache: its local ``path``, the repo, the revision asked and its commit."""

    path: Path
    repo_id: str
    revision: str | None
    commit: str | None

    def describe(self) -> str:
        revision = self.revision or constants.DEFAULT_REVISION
        return f"{self.repo_id} at revision `{revision}` (commit `{self.commit}`)"


def parse_hub_reference(reference: str) -> tuple[str, str | None] | None:
    """``owner/name[@revision]`` -> (repo id, revision); None when ``reference`` is not a Hub repo id."""
    repo_id, _, revision = str(reference).partition("@")
    if not is_repo_id(repo_id) or "/" not in repo_id:
        return None
    return repo_id, revision or None


def dataset_snapshot(repo_id: str, revision: str | None = None) -> DatasetSnapshot:
    """Download (or find in the cache) every file of a dataset repository at ``revision``."""
    with hub_errors(repo_id, revision):
        path = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    return DatasetSnapshot(path, repo_id, revision, commit_of(path))


def is_transient(error: BaseException) -> bool:
    """A failure worth retrying: the Hub's 5xx and 429 answers, connection errors and timeouts (not offline mode)."""
    if isinstance(error, OfflineModeIsEnabled):
        return False
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        return status is not None and (status >= 500 or status == 429)
    return isinstance(error, httpx2.TransportError | ConnectionError | TimeoutError)


def with_retries(call: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, retried up to ``RETRIES`` times with doubling waits while it fails transiently."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:
            if attempt == RETRIES or not is_transient(error):
                raise
            sleep(BACKOFF_SECONDS * 2**attempt)
            attempt += 1


def folder_files(folder: str | Path, exclude: Callable[[str], bool] = lambda name: False) -> dict[str, Path]:
    """``{path in repo: local file}`` of every file under ``folder`` (hidden files and folders left out)."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in name.split("/")) and not exclude(name):
            files[name] = path
    return files


def upload(
    repo_id: str,
    files: Mapping[str, Path | bytes],
    *,
    repo_type: str,
    commit_message: str,
    private: bool = False,
    gated: bool = False,
    create: bool = True,
    revision: str | None = None,
    replace: bool = False,
    api: HfApi | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Upload ``files`` (``{path in repo: local file or bytes}``) to ``repo_id`` as one commit; returns its URL.

    The repository is created when missing (``private`` applies then; with ``create=False`` a missing one is an
    error), and gated (``gated="manual"``) before the commit when ``gated`` is set. The commit goes to branch
    ``revision`` (default ``main``), created from ``main`` when missing; with ``replace`` it also deletes the files the
    revision holds that are not in ``files`` (``.gitattributes`` kept). Raises :class:`HubUploadError` when the upload
    fails, having put back what it changed.
    """
    api = api or HfApi()
    try:
        existed = with_retries(lambda: api.repo_exists(repo_id, repo_type=repo_type), sleep)
        info = with_retries(lambda: api.repo_info(repo_id, repo_type=repo_type), sleep) if existed else None
    except Exception as error:
        raise HubUploadError(f"cannot reach {repo_type} repo {repo_id} ({error}): nothing was uploaded") from error
    if info is None and not create:
        raise HubUploadError(f"no {repo_type} repo {repo_id} on the Hub (or no access to it): nothing was uploaded")
    if info is not None and private and not info.private:
        # create_repo leaves an existing repo's visibility alone: the files would be public.
        raise HubUploadError(
            f"{repo_type} repo {repo_id} exists and is public: make it private first; nothing was uploaded"
        )
    previous_gating = info.gated if info is not None else None
    gating_changed = branch_created = False
    branch = revision if revision not in (None, constants.DEFAULT_REVISION) else None
    try:
        with_retries(lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True), sleep)
        if gated and previous_gating != GATING:
            with_retries(lambda: api.update_repo_settings(repo_id, repo_type=repo_type, gated=GATING), sleep)
            gating_changed = True
        if branch is not None:
            refs = with_retries(lambda: api.list_repo_refs(repo_id, repo_type=repo_type), sleep)
            if branch not in {ref.name for ref in refs.branches}:
                with_retries(
                    lambda: api.create_branch(repo_id, branch=branch, repo_type=repo_type, exist_ok=True), sleep
                )
                branch_created = True
        operations = [CommitOperationAdd(name, content) for name, content in files.items()]
        if replace:
            held = with_retries(lambda: api.list_repo_files(repo_id, revision=revision, repo_type=repo_type), sleep)
            operations += [
                CommitOperationDelete(name) for name in held if name not in files and name != ".gitattributes"
            ]
        commit = with_retries(
            lambda: api.create_commit(
                repo_id, operations, commit_message=commit_message, repo_type=repo_type, revision=revision
            ),
            sleep,
        )
    except Exception as error:
        remote = _undo(
            api, repo_id, repo_type, existed, gating_changed, previous_gating, branch if branch_created else None
        )
        raise HubUploadError(f"uploading to {repo_type} repo {repo_id} failed ({error}); {remote}") from error
    return commit.commit_url


def read_file(
    repo_id: str,
    filename: str,
    *,
    repo_type: str,
    api: HfApi | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """The text of ``filename`` in the repo's main branch, None when the repo holds no such file."""
    api = api or HfApi()
    with tempfile.TemporaryDirectory() as folder:
        try:
            with hub_errors(repo_id, None):
                try:
                    path = with_retries(
                        lambda: api.hf_hub_download(repo_id, filename, repo_type=repo_type, local_dir=folder), sleep
                    )
                except RemoteEntryNotFoundError:  # the Hub says so; not a cache miss offline
                    return None
        except ValueError as error:
            raise HubUploadError(f"cannot read {filename} ({error}): nothing was uploaded") from error
        return Path(path).read_text(encoding="utf-8")


def _undo(
    api: HfApi,
    repo_id: str,
    repo_type: str,
    existed: bool,
    gating_changed: bool,
    previous_gating,
    created_branch: str | None = None,
) -> str:
    """Put back what a failed upload changed; returns what the remote holds now, in words."""
    try:
        if not existed:
            api.delete_repo(repo_id, repo_type=repo_type, missing_ok=True)
            return "nothing was uploaded and the repository it had created was deleted again"
        if gating_changed:
            api.update_repo_settings(repo_id, repo_type=repo_type, gated=previous_gating or False)
            gating_changed = False
        if created_branch is not None:
            api.delete_branch(repo_id, branch=created_branch, repo_type=repo_type)
        return "nothing was uploaded: the repository is as it was"
    except Exception as error:  # the remote could not be put back: say exactly what is left
        remains = [f"its gating set to {GATING!r}"] * gating_changed
        remains += [f"branch {created_branch!r} (a copy of main)"] * (created_branch is not None)
        left = "an empty repository" if not existed else " and ".join(remains)
        return f"nothing was uploaded, but {left} remains ({error}): remove it on the Hub"


__all__ = [
    "GATING",
    "DatasetSnapshot",
    "HubUploadError",
    "dataset_snapshot",
    "folder_files",
    "is_transient",
    "parse_hub_reference",
    "read_file",
    "upload",
    "with_retries",
]
