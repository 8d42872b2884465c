"""What a model has seen: per-record exposure figures, the chronological curriculum, and ``exposure.json``.

Every record of a training mixture carries its figures in ``exposure_*`` columns, computed once when it is loaded
(:func:`with_exposure_columns`), so that they travel through mixing and ordering with the record itself:

- ``utterances``: transcript utterances in the record (an ``utterances`` row: 1; a chat record: its assistant
  turns), for records of a video corpus (one with a ``recording`` column: SAYCam, the toy world); 0 otherwise
  (a DevCV answer is not something the child heard).
- ``words``: whitespace-separated words of those utterances.
- ``images``: images fed to the model (chat ``images``, or the one ``image`` of a ``frames`` row).
- ``frames``: those of the images that are video frames (the images of a video corpus).
- ``video_seconds``: recording time the record covers: ``end_ms - start_ms`` where the corpus has a span; a
  ``frames`` row covers one period of its recording's frame grid (the smallest gap between its ``time_ms``).
- ``age_months``, ``child``: the child's age at recording and the child (null outside video corpora).

A trainer counts the records it actually feeds (every process, summed at each save) into an :class:`ExposureTally`;
a saved folder gets ``exposure.json`` (:data:`EXPOSURE_FORMAT`, :func:`exposure_document`), cumulative over its
lineage: a run started from a folder that has one carries that folder's stages.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
from datasets import Dataset

EXPOSURE_FORMAT = "babyvlm-exposure/1"
EXPOSURE_FILE = "exposure.json"
AGE_CHECKPOINTS = "age_checkpoints"
"""The folder of a run's age checkpoints, one model folder per age (:func:`age_folder_name`)."""
SUMMED = ("video_seconds", "frames", "utterances", "words", "images", "records")
COLUMNS = {name: f"exposure_{name}" for name in ("age_months", "child", *SUMMED[:-1])}
"""The exposure columns a loaded record carries (``records`` is counted, not stored)."""


def _said(messages: list[dict]) -> list[str]:
    return [
        " ".join(block["text"] for block in turn["content"] if block.get("type") == "text" and block.get("text"))
        for turn in messages
        if turn["role"] == "assistant"
    ]


def _frame_periods(recordings: list[str], times: list[int]) -> list[float]:
    """Seconds each frame stands for: the smallest gap between frame times of its recording (0 for a lone frame)."""
    by_recording: dict[str, list[int]] = {}
    for recording, time in zip(recordings, times, strict=True):
        by_recording.setdefault(recording, []).append(time)
    period = {}
    for recording, values in by_recording.items():
        values = sorted(set(values))
        period[recording] = min((b - a for a, b in zip(values, values[1:], strict=False)), default=0) / 1000
    return [period[recording] for recording in recordings]


def record_figures(dataset: Dataset, image_column: str = "image") -> dict[str, list]:
    """The exposure figures of every record of ``dataset`` (see the module docstring), by name; a row with an
    ``image_column`` is one image."""
    columns = set(dataset.column_names)
    wanted = [name for name in ("messages", "text", "recording", "start_ms", "end_ms", "time_ms") if name in columns]
    table = dataset.select_columns(wanted + [c for c in ("images", "age_months", "child") if c in columns])
    table = table.with_format("arrow")[:]
    count = len(dataset)
    video = "recording" in columns
    if "messages" in columns:
        said = [_said(messages) for messages in table.column("messages").to_pylist()]
    elif "text" in columns:
        said = [[text or ""] for text in table.column("text").to_pylist()]
    else:
        said = [[] for _ in range(count)]
    if "images" in columns:
        images = pc.fill_null(pc.list_value_length(table.column("images")), 0).to_pylist()
    else:
        images = [1 if image_column in columns else 0] * count
    if {"start_ms", "end_ms"} <= columns:
        spans = zip(table.column("start_ms").to_pylist(), table.column("end_ms").to_pylist(), strict=True)
        seconds = [(end - start) / 1000 if None not in (start, end) else 0.0 for start, end in spans]
    elif video and "time_ms" in columns:
        seconds = _frame_periods(table.column("recording").to_pylist(), table.column("time_ms").to_pylist())
    else:
        seconds = [0.0] * count
    return {
        "age_months": table.column("age_months").to_pylist() if "age_months" in columns else [None] * count,
        "child": table.column("child").to_pylist() if "child" in columns else [None] * count,
        "video_seconds": seconds if video else [0.0] * count,
        "frames": images if video else [0] * count,
        "utterances": [len(turns) for turns in said] if video else [0] * count,
        "words": [sum(len(text.split()) for text in turns) for turns in said] if video else [0] * count,
        "images": images,
    }


def with_exposure_columns(dataset: Dataset, image_column: str = "image") -> Dataset:
    """``dataset`` with the ``exposure_*`` columns of :func:`record_figures` added."""
    for name, values in record_figures(dataset, image_column).items():
        dataset = dataset.add_column(COLUMNS[name], values)
    return dataset


@dataclass(frozen=True)
class Curriculum:
    """The order of a stage's records: ``shuffled`` (the Trainer's own sampling, the default), ``chronological``
    (by the child's age at recording, children pooled), or ``child=S`` (child S's timeline only, in order)."""

    name: str = "shuffled"
    window_months: float | None = None

    @classmethod
    def parse(cls, text: str | None, window_months: float | None = None) -> Curriculum:
        text = (text or "shuffled").strip()
        if text not in ("shuffled", "chronological") and not (text.startswith("child=") and len(text) > 6):
            raise ValueError(f"curriculum must be `shuffled`, `chronological` or `child=S`, got {text!r}")
        if window_months is not None and (text == "shuffled" or window_months <= 0):
            raise ValueError(
                "curriculum_window_months needs a chronological or child curriculum and a positive number of months"
            )
        return cls(text, window_months)

    @property
    def ordered(self) -> bool:
        return self.name != "shuffled"

    @property
    def child(self) -> str | None:
        return self.name.removeprefix("child=") if self.name.startswith("child=") else None

    def describe(self) -> str:
        window = f", shuffled within {self.window_months:g}-month windows" if self.window_months else ""
        return self.name + window

    def check_source(self, dataset: Dataset, source: str) -> None:
        """A curriculum needs the child's age of every record: one line naming the dataset otherwise."""
        if self.ordered and ("age_months" not in dataset.column_names or None in dataset["age_months"]):
            raise ValueError(f"{source}: curriculum {self.name!r} needs an `age_months` for every record")

    def order(self, dataset: Dataset, seed: int) -> Dataset:
        """The records in curriculum order: by age (ties: child, then position in the mixture), optionally shuffled
        within windows of ``window_months`` (seeded), keeping one child's only for ``child=S``."""
        if not self.ordered:
            return dataset
        ages, children = dataset[COLUMNS["age_months"]], dataset[COLUMNS["child"]]
        rows = range(len(dataset))
        if self.child is not None:
            rows = [row for row in rows if children[row] == self.child]
            if not rows:
                raise ValueError(
                    f"curriculum {self.name!r}: no record of child {self.child!r} (children: "
                    f"{', '.join(sorted({str(c) for c in children}))})"
                )
        if self.window_months:
            rng = random.Random(seed)
            draw = {row: rng.random() for row in rows}
            key = lambda row: (math.floor(ages[row] / self.window_months), draw[row], row)  # noqa: E731
        else:
            key = lambda row: (ages[row], str(children[row]), row)  # noqa: E731
        return dataset.select(sorted(rows, key=key))


@dataclass
class ExposureTally:
    """Sums of the figures of the records fed so far (one process's, or all processes' once reduced), and the age
    range they span."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUMMED, 0))
    age_range: list[float] | None = None

    def add_records(self, records: list[dict]) -> None:
        for record in records:
            for name in SUMMED[:-1]:
                self.sums[name] += record[COLUMNS[name]] or 0
            self.sums["records"] += 1
            age = record.get(COLUMNS["age_months"])
            if age is not None:
                lo, hi = self.age_range or (age, age)
                self.age_range = [min(lo, age), max(hi, age)]

    def as_vector(self) -> list[float]:
        lo, hi = self.age_range or (math.inf, -math.inf)
        return [float(self.sums[name]) for name in SUMMED] + [lo, -hi]

    @classmethod
    def from_vectors(cls, summed: list[float], minimum: list[float]) -> ExposureTally:
        """From the sum (first fields) and the minimum (last two: ``lo`` and ``-hi``) over processes."""
        tally = cls({name: summed[index] for index, name in enumerate(SUMMED)})
        lo, hi = minimum[-2], -minimum[-1]
        tally.age_range = [lo, hi] if math.isfinite(lo) else None
        return tally

    def scaled(self, factor: float) -> ExposureTally:
        """The tally of ``factor`` passes over these records (a text stage counted by epochs)."""
        return ExposureTally({name: value * factor for name, value in self.sums.items()}, self.age_range)


def stage_entry(
    stage: str, curriculum: Curriculum, tally: ExposureTally, epochs: float, steps: int, corpora: list[dict]
) -> dict:
    """One stage of ``exposure.json``."""
    sums = tally.sums
    return {
        "stage": stage,
        "curriculum": curriculum.describe(),
        "epochs": round(float(epochs), 6),
        "steps": int(steps),
        "records": round(sums["records"]),
        "video_hours": round(sums["video_seconds"] / 3600, 9),  # the same however processes split the sum
        "frames": round(sums["frames"]),
        "utterances": round(sums["utterances"]),
        "words": round(sums["words"]),
        "images": round(sums["images"]),
        "age_months_range": tally.age_range,
        "corpora": corpora,
    }


def read_exposure(folder: str | Path) -> dict | None:
    """The folder's ``exposure.json``, None when it has none; one-line ``ValueError`` when it is malformed."""
    path = Path(folder) / EXPOSURE_FILE
    if not path.is_file():
        return None
    try:
        exposure = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    if not isinstance(exposure, dict) or exposure.get("format") != EXPOSURE_FORMAT:
        raise ValueError(f"{path}: format is not {EXPOSURE_FORMAT!r}")
    return exposure


def parent_stages(*parents: str | Path | None) -> list[dict]:
    """The stages of the parents' ``exposure.json`` (a folder without one contributes none)."""
    stages = []
    for parent in parents:
        exposure = read_exposure(parent) if parent else None
        if exposure is not None:
            stages += exposure["stages"]
    return stages


def exposure_document(stages: list[dict], age_months_reached: float | None = None) -> dict:
    """The ``exposure.json`` of a folder whose lineage trained ``stages`` (oldest first): totals over them."""
    ranges = [stage["age_months_range"] for stage in stages if stage["age_months_range"]]
    totals = {
        name: round(sum(stage[name] for stage in stages), 9)
        for name in ("video_hours", "frames", "utterances", "words", "images", "epochs", "steps")
    }
    return {
        "format": EXPOSURE_FORMAT,
        "age_months_reached": age_months_reached,
        "age_months_range": [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else None,
        **totals,
        "stages": stages,
    }


def write_exposure(folder: Path, document: dict) -> None:
    (Path(folder) / EXPOSURE_FILE).write_text(json.dumps(document, indent=2) + "\n")


def exposure_card_section(document: dict) -> str:
    """The model card's summary of ``exposure.json``."""
    age = document["age_months_range"]
    lines = ["## Exposure", "", "What this model's lineage was trained on (`exposure.json` has every stage):", ""]
    if document["age_months_reached"] is not None:
        lines.append(f"- Age checkpoint: the training stream passed {document['age_months_reached']:g} months")
    lines += [
        f"- Child's age at recording: {f'{age[0]:g}–{age[1]:g} months' if age else 'n/a (no age-tagged data)'}",
        f"- Video: {document['video_hours']:.2f} h, {document['frames']:,} frames",
        f"- Utterances: {document['utterances']:,} ({document['words']:,} words)",
        f"- Images fed: {document['images']:,}; epochs {document['epochs']:g}, steps {document['steps']:,}",
        "",
        "| stage | curriculum | steps | epochs | utterances | words | frames | video h | ages |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for stage in document["stages"]:
        ages = stage["age_months_range"]
        lines.append(
            f"| {stage['stage']} | {stage['curriculum']} | {stage['steps']} | {stage['epochs']:g} | "
            f"{stage['utterances']} | {stage['words']} | {stage['frames']} | {stage['video_hours']:.3f} | "
            f"{f'{ages[0]:g}–{ages[1]:g}' if ages else '–'} |"
        )
    return "\n".join(lines) + "\n"


def age_folder_name(age: float) -> str:
    """``age-09mo``, ``age-12mo``, ``age-10.5mo``: an age checkpoint's folder."""
    whole = float(age).is_integer()
    return f"age-{int(age):02d}mo" if whole else f"age-{math.floor(age):02d}{f'{age:g}'[len(str(math.floor(age))) :]}mo"


AGE_FOLDER_NAME = re.compile(r"^age-(\d+(?:\.\d+)?)mo$")


def folder_age(name: str) -> float | None:
    """The age (months) an age checkpoint's folder name gives, None for any other name.

    >>> folder_age(age_folder_name(10.5)), folder_age("final")
    (10.5, None)
    """
    found = AGE_FOLDER_NAME.match(name)
    return float(found.group(1)) if found else None


def age_thresholds(at: list[float] | None, every: float | None, lo: float, hi: float) -> list[float]:
    """The ages to checkpoint at: ``at`` as given, or every ``every`` months from the first multiple above ``lo``
    through ``hi``."""
    if at and every:
        raise ValueError("give save_at_age_months or save_every_age_months, not both")
    if every is not None:
        if every <= 0:
            raise ValueError(f"save_every_age_months must be positive, got {every}")
        first = math.floor(lo / every) * every + every
        return [round(first + k * every, 6) for k in range(int(math.floor((hi - first) / every + 1e-9)) + 1)]
    return sorted(float(age) for age in at or [])
