"""`babyvlm push-ages OUTPUT_DIR --repo ORG/NAME`: a run's age checkpoints as revisions of one Hub model repository.

A text recipe run with `save_at_age_months` or `save_every_age_months` leaves its final model in `OUTPUT_DIR` and a
complete model folder per age in `OUTPUT_DIR/age_checkpoints/age-09mo`, `age-10.5mo`, … (:mod:`.timeline`). Each age
checkpoint goes to the branch named like its folder, the final model to `main`: the way the BabyLM pipeline publishes
its checkpoints, and the names `babyvlm.evaluate_metrics.trajectory` reads (`ORG/NAME@age-09mo`). Every revision is
one commit holding exactly its folder (model, processor, `exposure.json`, card), so

    AutoModelForImageTextToText.from_pretrained("ORG/NAME", revision="age-09mo")

loads the model as it was when the training stream passed 9 months. The ages are pushed youngest first, then `main`;
a push that fails part-way says which revisions landed, and a re-run replaces each revision whole.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from babyvlm import __version__
from babyvlm.command_line import command_parser, fail
from babyvlm.hub import HubUploadError, folder_files, upload

from .exposure import AGE_CHECKPOINTS, EXPOSURE_FILE, age_folder_name

MODEL_FILES = ("config.json", "adapter_config.json")
"""A model folder holds one of these (a full model, or a LoRA adapter)."""
CARD = "README.md"


@dataclass(frozen=True)
class AgeCheckpoint:
    """One age checkpoint folder: its branch name (the folder's), the age its stream passed, and where it is."""

    branch: str
    age_months: float
    folder: Path


def _check_model_folder(folder: Path) -> None:
    if not any((folder / name).is_file() for name in MODEL_FILES):
        raise ValueError(f"{folder}: not a model folder (no {' or '.join(MODEL_FILES)})")


def find_age_checkpoints(output_dir: str | Path) -> list[AgeCheckpoint]:
    """The age checkpoints of a run's final folder, youngest first; one-line ``ValueError`` naming a folder that is
    not a complete age checkpoint (model, ``exposure.json`` whose age is the folder's, card)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise FileNotFoundError(f"{output_dir}: no such folder")
    _check_model_folder(output_dir)
    folders = sorted(p for p in (output_dir / AGE_CHECKPOINTS).glob("*") if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(
            f"{output_dir}: no age checkpoints in {AGE_CHECKPOINTS}/ (train with save_at_age_months or "
            "save_every_age_months)"
        )
    checkpoints = []
    for folder in folders:
        _check_model_folder(folder)
        for name in (EXPOSURE_FILE, CARD):
            if not (folder / name).is_file():
                raise ValueError(f"{folder}: no {name}; not a complete age checkpoint")
        try:
            age = json.loads((folder / EXPOSURE_FILE).read_text())["age_months_reached"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{folder / EXPOSURE_FILE}: no age_months_reached ({error!r})") from None
        if not isinstance(age, int | float) or age_folder_name(age) != folder.name:
            raise ValueError(
                f"{folder}: exposure.json says the stream passed {age!r} months, which is not the folder's age"
            )
        checkpoints.append(AgeCheckpoint(folder.name, float(age), folder))
    return sorted(checkpoints, key=lambda checkpoint: checkpoint.age_months)


def main_card(output_dir: Path, repo_id: str, checkpoints: list[AgeCheckpoint]) -> bytes:
    """The final model's card with the age checkpoints' branches listed: `main`'s README."""
    rows = "\n".join(f"| `{c.branch}` | {c.age_months:g} |" for c in checkpoints)
    section = f"""
## Age checkpoints

This repository's branches hold the model as it was when the training stream, in the child's order, passed each
age; each branch is a complete model folder with its own `exposure.json` and card. `main` is the final model.

| revision | age passed (months) |
|---|---|
{rows}

```python
from transformers import AutoModelForImageTextToText

model = AutoModelForImageTextToText.from_pretrained("{repo_id}", revision="{checkpoints[0].branch}")
```
"""
    return ((output_dir / CARD).read_text().rstrip("\n") + "\n" + section).encode()


def push_ages(output_dir: str | Path, repo_id: str, private: bool = False, api=None) -> dict[str, str]:
    """Push each age checkpoint of ``output_dir`` to its branch of ``repo_id`` and the final model to ``main``;
    returns ``{revision: commit URL}``. ``HubUploadError`` says which revisions landed before one failed."""
    output_dir = Path(output_dir)
    checkpoints = find_age_checkpoints(output_dir)
    final = folder_files(output_dir, exclude=lambda name: name.split("/")[0] == AGE_CHECKPOINTS)
    revisions = [
        (c.branch, folder_files(c.folder), f"age checkpoint {c.branch}: the stream passed {c.age_months:g} months")
        for c in checkpoints
    ]
    revisions.append(("main", {**final, CARD: main_card(output_dir, repo_id, checkpoints)}, "final model"))
    pushed: dict[str, str] = {}
    for revision, files, message in revisions:
        try:
            pushed[revision] = upload(
                repo_id,
                files,
                repo_type="model",
                private=private,
                revision=revision,
                replace=True,
                commit_message=f"{message} (babyvlm {__version__})",
                api=api,
            )
        except HubUploadError as error:
            landed = ", ".join(pushed) or "none"
            raise HubUploadError(f"{revision}: {error}; revisions pushed before it: {landed}") from error
    return pushed


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "push-ages",
        "Publish a run's age checkpoints as branches of one Hub model repository (age-09mo, …); main: the final model.",
        ["babyvlm push-ages runs/stage2-chronological --repo me/babyllava-v2-timeline --private"],
    )
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="the run's final folder, holding age_checkpoints/")
    parser.add_argument("--repo", required=True, metavar="ORG/NAME", help="the model repository (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        pushed = push_ages(args.output_dir, args.repo, private=args.private)
    except (FileNotFoundError, ValueError, HubUploadError) as error:
        return fail(parser, error)
    for revision, url in pushed.items():
        print(f"{args.repo}@{revision}: {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
