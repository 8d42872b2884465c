"""The SAYCam raw layout: recording names and where the videos are.

Recordings are named ``{child}_{YYYYMMDD}_{HHMM}_{segment}`` (child ``S``, ``A`` or ``Y``), e.g.
``S_20130708_1032_01``; videos carry that name with a ``.mp4``, ``.mov`` or ``.avi`` extension and
may sit in one folder or in nested ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePath

from .report import Failure

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
CHILDREN = ("S", "A", "Y")
RECORDING_PATTERN = re.compile(r"(?P<child>[SAY])_(?P<date>\d{8})_(?P<time>\d{4})_(?P<segment>[0-9A-Za-z]+)")


@dataclass(frozen=True)
class RecordingName:
    name: str
    child: str
    date: date
    time: str
    """``HHMM`` as in the name."""
    segment: str


def parse_recording_name(name: str) -> RecordingName:
    """Parse ``S_20130708_1032_01``; ``ValueError`` says what is wrong with any other name."""
    match = RECORDING_PATTERN.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a recording name {{child S/A/Y}}_{{YYYYMMDD}}_{{HHMM}}_{{segment}}")
    try:
        day = datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"{name!r} has an invalid date {match['date']!r}") from None
    return RecordingName(name=name, child=match["child"], date=day, time=match["time"], segment=match["segment"])


def recording_key(value: str) -> str:
    """The recording name a transcript cell refers to: folders and a media extension are dropped."""
    path = PurePath(value.strip())
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS + AUDIO_EXTENSIONS else path.name


def discover_media(
    root: str | Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS
) -> tuple[dict[str, Path], list[Failure]]:
    """Find every file with one of ``extensions`` under ``root``, keyed by recording name.

    Files whose names are not recording names, and second copies of a recording, are returned as
    failures instead (the first path in sorted order wins).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist")
    found: dict[str, Path] = {}
    failures = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file()):
        try:
            name = parse_recording_name(path.stem).name
        except ValueError as error:
            failures.append(Failure(str(path), "bad_recording_name", str(error)))
            continue
        if name in found:
            failures.append(Failure(str(path), "duplicate_recording", f"{name} is already {found[name]}"))
            continue
        found[name] = path
    return found, failures
