"""The Hub in tests: a populated cache for offline downloads, and a recording stand-in for `HfApi` uploads."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import httpx2
from huggingface_hub import CommitOperationDelete
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError
from huggingface_hub.hf_api import CommitInfo, RepoUrl


def commit_hash(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def cache_repo(
    cache: Path, repo_id: str, files: Path, commit: str, refs: tuple[str, ...] = ("main",), repo_type: str = "model"
) -> None:
    """Lay out the files of `files` (a folder) as `snapshot_download` leaves a repo at `commit` in the cache."""
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for file in sorted(path for path in files.rglob("*") if path.is_file()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, blob)
        link = snapshot / file.relative_to(files)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def http_error(status: int, error=HfHubHTTPError) -> HfHubHTTPError:
    request = httpx2.Request("POST", "https://huggingface.co/api/repo")
    return error(f"{status} from the Hub", response=httpx2.Response(status, request=request))


class RecordingHub:
    """Stands in for `HfApi`: records every call, holds repos in memory, and fails calls as told.

    `fail[name]` is a list of exceptions the next calls of method `name` raise, one each, in order (None: that call
    succeeds).
    `files[repo_id]` holds what the repo's commits put on `main` (path in repo -> bytes), `branches[repo_id][name]`
    what another branch holds (a new branch starts as a copy of main).
    """

    def __init__(self, existing: dict[str, dict[str, bytes]] | None = None, gated=False, private=False):
        self.calls: list[tuple[str, dict]] = []
        self.fail: dict[str, list[Exception]] = {}
        self.files: dict[str, dict[str, bytes]] = {repo: dict(files) for repo, files in (existing or {}).items()}
        self.gated = {repo: gated for repo in self.files}
        self.private = {repo: private for repo in self.files}
        self.commits: list[dict] = []
        self.branches: dict[str, dict[str, dict[str, bytes]]] = {}

    def tree(self, repo_id: str, revision: str | None = None) -> dict[str, bytes]:
        """The files of `revision` (None or "main": the main branch)."""
        return self.files[repo_id] if revision in (None, "main") else self.branches[repo_id][revision]

    def _call(self, name: str, **kwargs) -> None:
        self.calls.append((name, kwargs))
        if self.fail.get(name) and (error := self.fail[name].pop(0)) is not None:
            raise error

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def repo_exists(self, repo_id, repo_type=None):
        self._call("repo_exists", repo_id=repo_id, repo_type=repo_type)
        return repo_id in self.files

    def repo_info(self, repo_id, repo_type=None):
        self._call("repo_info", repo_id=repo_id, repo_type=repo_type)
        return type(
            "Info", (), {"gated": self.gated.get(repo_id, False), "private": self.private.get(repo_id, False)}
        )()

    def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=False):
        self._call("create_repo", repo_id=repo_id, repo_type=repo_type, private=private, exist_ok=exist_ok)
        self.files.setdefault(repo_id, {})
        self.gated.setdefault(repo_id, False)
        self.private.setdefault(repo_id, bool(private))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def update_repo_settings(self, repo_id, repo_type=None, gated=None):
        self._call("update_repo_settings", repo_id=repo_id, repo_type=repo_type, gated=gated)
        self.gated[repo_id] = gated

    def delete_repo(self, repo_id, repo_type=None, missing_ok=False):
        self._call("delete_repo", repo_id=repo_id, repo_type=repo_type)
        self.files.pop(repo_id, None)

    def list_repo_refs(self, repo_id, repo_type=None):
        self._call("list_repo_refs", repo_id=repo_id, repo_type=repo_type)
        names = ["main", *self.branches.get(repo_id, {})]
        return type("Refs", (), {"branches": [type("Branch", (), {"name": name})() for name in names]})()

    def create_branch(self, repo_id, branch, revision=None, repo_type=None, exist_ok=False):
        self._call("create_branch", repo_id=repo_id, branch=branch, repo_type=repo_type, exist_ok=exist_ok)
        self.branches.setdefault(repo_id, {}).setdefault(branch, dict(self.files[repo_id]))

    def delete_branch(self, repo_id, branch, repo_type=None):
        self._call("delete_branch", repo_id=repo_id, branch=branch, repo_type=repo_type)
        self.branches.get(repo_id, {}).pop(branch, None)

    def list_repo_files(self, repo_id, revision=None, repo_type=None):
        self._call("list_repo_files", repo_id=repo_id, revision=revision, repo_type=repo_type)
        return sorted(self.tree(repo_id, revision))

    def create_commit(self, repo_id, operations, commit_message, repo_type=None, revision=None):
        operations = list(operations)
        self._call(
            "create_commit", repo_id=repo_id, repo_type=repo_type, commit_message=commit_message, revision=revision
        )
        content, deleted = {}, []
        for operation in operations:
            if isinstance(operation, CommitOperationDelete):
                deleted.append(operation.path_in_repo)
                continue
            source = operation.path_or_fileobj
            content[operation.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
        tree = self.tree(repo_id, revision)
        for name in deleted:
            tree.pop(name)
        tree.update(content)
        self.commits.append(
            {"repo_id": repo_id, "revision": revision, "message": commit_message, "files": content, "deleted": deleted}
        )
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{len(self.commits)}",
            commit_message=commit_message,
            commit_description="",
            oid=str(len(self.commits)),
        )

    def hf_hub_download(self, repo_id, filename, repo_type=None, local_dir=None):
        self._call("hf_hub_download", repo_id=repo_id, filename=filename, repo_type=repo_type)
        if filename not in self.files.get(repo_id, {}):
            raise http_error(404, RemoteEntryNotFoundError)
        path = Path(local_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.files[repo_id][filename])
        return str(path)


def write_commit(files: dict[str, bytes], folder: Path) -> Path:
    """Write the files of one recorded commit into `folder`: exactly what a clone of the repo would hold."""
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder
