"""The checkpoints of a developmental trajectory and where each lies on the axis of experience.

A checkpoint is a model folder; a folder holding ``age_checkpoints/`` (or model folders directly) stands for
each of them; ``owner/name@revision`` is a Hub revision. Each checkpoint's experience comes from the
``exposure.json`` beside its ``config.json`` (format ``babyvlm-exposure/1``); without one, a folder named
``age-<months>mo`` still gives its age, and anything else can be ordered only as given (``x="checkpoint"``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

EXPOSURE_FILE = "exposure.json"
EXPOSURE_FORMAT = "babyvlm-exposure/1"
AGE_NAME = re.compile(r"^age-(\d+(?:\.\d+)?)mo$")
AXES = {"months": "age_months_reached", "hours": "video_hours", "words": "words", "checkpoint": None}
"""``--x``: the exposure field each axis reads (``checkpoint``: the order given)."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    source: str
    path: Path
    exposure: dict | None

    def experience(self, axis: str, index: int) -> float:
        """The checkpoint's place on ``axis`` (one of :data:`AXES`); ``ValueError`` naming it where unknown."""
        if axis not in AXES:
            raise ValueError(f"unknown axis {axis!r}; choose one of {', '.join(AXES)}")
        if axis == "checkpoint":
            return float(index)
        value = (self.exposure or {}).get(AXES[axis])
        if value is None and axis == "months" and AGE_NAME.match(self.path.name):
            value = float(AGE_NAME.match(self.path.name).group(1))
        if value is None:
            why = f"{EXPOSURE_FILE} has no {AXES[axis]}" if self.exposure else f"no {EXPOSURE_FILE}"
            raise ValueError(
                f"{self.source}: {why} and its name gives no age, so it cannot be placed on the {axis} axis "
                "(--x checkpoint orders the checkpoints as given)"
            )
        return float(value)


def read_exposure(folder: Path) -> dict | None:
    """The folder's ``exposure.json``, None when it has none; one-line ``ValueError`` when it is malformed."""
    path = folder / EXPOSURE_FILE
    if not path.is_file():
        return None
    try:
        exposure = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    if not isinstance(exposure, dict) or exposure.get("format") != EXPOSURE_FORMAT:
        raise ValueError(f"{path}: format is not {EXPOSURE_FORMAT!r}")
    return exposure


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def resolve_checkpoints(references: list[str]) -> list[Checkpoint]:
    """Each reference as its checkpoints, in the order given (a folder of age checkpoints in age order)."""
    from babyvlm.checkpoint_sources import hub_errors
    from babyvlm.hub import parse_hub_reference

    checkpoints = []
    for reference in references:
        folder = Path(reference).expanduser()
        if folder.is_dir():
            if _is_model(folder):
                found = [folder]
            else:
                parent = folder / "age_checkpoints" if (folder / "age_checkpoints").is_dir() else folder
                found = [child for child in parent.iterdir() if child.is_dir() and _is_model(child)]
                found.sort(
                    key=lambda c: (
                        not AGE_NAME.match(c.name),
                        float(AGE_NAME.match(c.name).group(1)) if AGE_NAME.match(c.name) else 0.0,
                        c.name,
                    )
                )
                if not found:
                    raise ValueError(f"{folder}: neither a model folder (config.json) nor a folder of checkpoints")
            checkpoints += [Checkpoint(c.name, str(c), c, read_exposure(c)) for c in found]
            continue
        hub = parse_hub_reference(reference)
        if hub is None:
            raise FileNotFoundError(
                f"checkpoint {reference}: no such folder, and not a Hub reference owner/name@revision"
            )
        from huggingface_hub import snapshot_download

        repo_id, revision = hub
        with hub_errors(repo_id, revision):
            path = Path(snapshot_download(repo_id, revision=revision))
        name = f"{repo_id.replace('/', '--')}@{revision or 'main'}"
        checkpoints.append(Checkpoint(name, reference, path, read_exposure(path)))
    names = [c.name for c in checkpoints]
    if len(set(names)) != len(names):
        raise ValueError(
            f"two checkpoints share a name ({', '.join(sorted({n for n in names if names.count(n) > 1}))})"
        )
    return checkpoints
