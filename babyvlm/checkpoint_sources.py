"""Where the original checkpoints come from: a local path, or a Hub repository resolved through `huggingface_hub`.

`babyvlm convert` accepts either for each input. A Hub reference is fetched with `hf_hub_download` /
`snapshot_download`, so the user's cache (`HF_HOME`, `HF_HUB_CACHE`), token (`hf auth login`, `HF_TOKEN`) and offline
mode (`HF_HUB_OFFLINE=1`: cached files only) apply as everywhere else in the ecosystem. Every failure to find a repo,
revision or file becomes one `ValueError` naming it; nothing is written outside the Hub cache.

The released ids (modeling/CONVERSION.md) are `wsashawn/babyllava_v2_phase2` and `wsashawn/babyllava_v2_instruction_ft`
(LLaVA format) and `wsashawn/babyllava_v2_vision_backbone` (the DINO `.pth`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import ModelCard, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

RELEASED_VISION_BACKBONE = "wsashawn/babyllava_v2_vision_backbone"
# What the converter reads from a LLaVA-format repo (top level only: the authors' repos may also hold trainer
# checkpoints in subfolders, optimizer states and pickled training arguments, none of which are needed).
_LLAVA_FILES = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.model", "*.txt", "README.md"]
_SUBFOLDERS = ["*/*"]
_VISION_SUFFIX = ".pth"
_COMMIT_FOLDER = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CheckpointSource:
    """A resolved input: the local `path` to read, and for a Hub input the repo, the revision asked and its commit."""

    path: Path
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def describe(self) -> str:
        """One Markdown line for the model card and the CLI report."""
        if self.repo_id is None:
            return f"local `{self.path.name}`"
        revision = self.revision or constants.DEFAULT_REVISION
        return (
            f"[{self.repo_id}](https://huggingface.co/{self.repo_id}) at revision `{revision}` "
            f"(commit `{self.commit}`)" + (f", file `{self.path.name}`" if self.path.is_file() else "")
        )

    def license_metadata(self) -> dict:
        """The `license`, `license_name`, `license_link` of the source repo's model card, when it states one."""
        folder = self.path if self.path.is_dir() else self.path.parent
        card = folder / "README.md"
        if (self.repo_id is None and folder != self.path) or not card.is_file():
            return {}  # a local file's folder is not a repo: its README says nothing about the file
        data = ModelCard.load(card, ignore_metadata_errors=True).data
        return {key: getattr(data, key, None) for key in ("license", "license_name", "license_link") if data.get(key)}


def resolve_llava_checkpoint(reference: str | Path, revision: str | None = None) -> CheckpointSource:
    """A LLaVA-format folder, or a Hub repo id at `revision` of which only `config.json` is fetched so far.

    Reading the config first lets a repo that is not a LLaVA checkpoint, or whose vision tower cannot be found, fail
    before gigabytes of weights are downloaded; `fetch_llava_files` then fetches the rest at the same commit.
    """
    folder = Path(reference)
    if folder.is_dir():
        _no_revision_for_local(folder, revision)
        return CheckpointSource(folder)
    repo_id = _repo_id(str(reference), "LLaVA checkpoint")
    with hub_errors(repo_id, revision):
        config = Path(hf_hub_download(repo_id, "config.json", revision=revision))
    return CheckpointSource(config.parent, repo_id, revision, commit_of(config))


def fetch_llava_files(source: CheckpointSource) -> CheckpointSource:
    """Fetch the top-level config, tokenizer and weight files of a Hub checkpoint at its resolved commit.

    Subfolders (the authors' repos may hold trainer checkpoints) are left out. A local folder is returned as is.
    """
    if source.repo_id is None:
        return source
    with hub_errors(source.repo_id, source.revision):
        snapshot = snapshot_download(
            source.repo_id, revision=source.commit, allow_patterns=_LLAVA_FILES, ignore_patterns=_SUBFOLDERS
        )
    return CheckpointSource(Path(snapshot), source.repo_id, source.revision, source.commit)


def resolve_vision_checkpoint(reference: str | Path, revision: str | None = None) -> CheckpointSource:
    """A `.pth` file, `REPO_ID:FILE`, or `REPO_ID` holding exactly one `.pth` at its top level."""
    path = Path(reference)
    if path.is_file():
        _no_revision_for_local(path, revision)
        return CheckpointSource(path)
    repo_id, _, filename = str(reference).partition(":")
    repo_id = _repo_id(repo_id, "vision checkpoint", file_hint=not filename)
    with hub_errors(repo_id, revision):
        if filename:
            file = Path(hf_hub_download(repo_id, filename, revision=revision))
            return CheckpointSource(file, repo_id, revision, commit_of(file))
        snapshot = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=[f"*{_VISION_SUFFIX}", "README.md"],
                ignore_patterns=_SUBFOLDERS,
            )
        )
    candidates = sorted(snapshot.glob(f"*{_VISION_SUFFIX}"))
    if len(candidates) != 1:
        found = ", ".join(path.name for path in candidates) or f"no {_VISION_SUFFIX} file"
        raise ValueError(f"{repo_id}: expected one {_VISION_SUFFIX} vision backbone, found {found}; pass REPO_ID:FILE")
    return CheckpointSource(candidates[0], repo_id, revision, commit_of(candidates[0]))


def vision_tower_named_by(llava_config: dict, source: CheckpointSource) -> str:
    """The vision backbone the LLaVA config's `mm_vision_tower` names, when it can be found here.

    The original accepts an existing `.pth` path or a Hub repo id (Orhan et al.'s `eminorhan/dino_say_vitl16`).
    The released configs name paths on the authors' machines: those raise a message asking for the backbone.
    """
    named = llava_config.get("mm_vision_tower")
    if named and Path(named).is_file():
        return named
    if named and not named.endswith(_VISION_SUFFIX) and is_repo_id(named):
        return named
    raise ValueError(
        f"{source.describe()}: config.json names its vision tower mm_vision_tower={named!r}, "
        f"{'which does not exist here (a path on the authors’ machines)' if named else 'which is empty'}; "
        f"pass --vision-checkpoint (the released backbone is {RELEASED_VISION_BACKBONE})"
    )


def commit_of(path: Path) -> str | None:
    """The commit of a file or folder inside a Hub cache snapshot (`.../snapshots/<commit>/...`)."""
    for part in reversed(path.parts[:-1] if path.is_file() else path.parts):
        if _COMMIT_FOLDER.match(part):
            return part
    return None


def is_repo_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _repo_id(reference: str, what: str, file_hint: bool = False) -> str:
    if not is_repo_id(reference):
        kind = "file" if file_hint else "folder"
        raise FileNotFoundError(f"{what} {reference!r}: no such {kind}, and not a Hub repo id (owner/name)")
    return reference


def _no_revision_for_local(path: Path, revision: str | None) -> None:
    if revision is not None:
        raise ValueError(f"{path} is a local path; a revision ({revision!r}) only applies to a Hub repo id")


@contextmanager
def hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn `huggingface_hub`'s errors for a missing repo, revision or file into one `ValueError` naming them."""
    where = f"{repo_id}@{revision or constants.DEFAULT_REVISION}"
    try:
        yield
    except RevisionNotFoundError as error:
        raise ValueError(f"{where}: this revision does not exist on the Hub") from error
    except RepositoryNotFoundError as error:
        raise ValueError(
            f"{where}: no such repository on the Hub (or it is private or gated: log in with `hf auth login`)"
        ) from error
    except LocalEntryNotFoundError as error:
        reason = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "no connection"
        raise ValueError(
            f"{where}: not in the local Hub cache ({constants.HF_HUB_CACHE}) and the Hub cannot be reached "
            f"({reason}); check the repo id and revision, or run once online"
        ) from error
    except EntryNotFoundError as error:
        raise ValueError(f"{where}: file not found in the repository ({error})") from error
    except HfHubHTTPError as error:
        raise ValueError(f"{where}: the Hub refused the request ({error})") from error


__all__ = [
    "RELEASED_VISION_BACKBONE",
    "CheckpointSource",
    "fetch_llava_files",
    "resolve_llava_checkpoint",
    "resolve_vision_checkpoint",
    "vision_tower_named_by",
]
