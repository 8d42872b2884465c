"""Dataset cards: the README.md that makes a corpus folder loadable with ``load_dataset(folder)``."""

from __future__ import annotations

from pathlib import Path

from datasets import DatasetInfo, List, SplitInfo, Value
from datasets.info import DatasetInfosDict
from datasets.splits import SplitDict
from huggingface_hub import DatasetCard, DatasetCardData

from babyvlm.staging import write_text

from ..licences import card_licence, size_category
from .config import BuildConfig
from .records import CorpusSpec
from .splits import HELD_OUT_SPLIT

SOURCE = "saycam"
"""The source of every corpus: SAYCam, shared through Databrary under its access agreement (``..licences``)."""


def _rules(name: str, config: BuildConfig) -> str:
    confidence = f"ASR confidence > {config.min_confidence} (when the transcripts have a confidence column)"
    clip = (
        f"CLIP image–text cosine similarity > {config.min_clip_score} with `{config.clip_model}`"
        if config.clip_model
        else "no CLIP filter (no CLIP model was given; `clip_score` is null)"
    )
    rules = {
        "utterances": "Every valid transcript row (no confidence filter: the `confidence` column lets you choose one).",
        "frames": f"Frames at {config.frames_fps} fps over each whole recording "
        f"(the frame on screen at each multiple of {1000 / config.frames_fps:g} ms).",
        "image_utterance": (
            f"Frames at the multiples of {1000 / config.pair_fps:g} ms inside each utterance's span "
            "(its midpoint when none falls inside), "
            f"each paired with the utterance. Kept: {confidence}; {clip}."
        ),
        "video_utterance": (
            f"Clips cut at utterance boundaries, {config.min_clip_seconds}–{config.max_clip_seconds} s long, "
            f"as {config.clip_frames} frames "
            f"at the centres of equal parts of the span. Kept: {confidence}; "
            + (
                f"X-CLIP video–text cosine similarity > {config.min_xclip_score} with `{config.xclip_model}`."
                if config.xclip_model
                else "no X-CLIP filter (no model was given; `xclip_score` is null)."
            )
        ),
        "interleaved": (
            f"Windows of {config.min_turns}–{config.max_turns} consecutive utterances of one recording "
            f"(a window starts every {config.turn_stride} utterances), among utterances with {confidence}. "
            "Each turn shows one frame of its utterance: "
            + (
                "the one with the highest CLIP score."
                if config.clip_model
                else "the one closest to the utterance's midpoint."
            )
        ),
        "mix": "The stage-2 mixture; copies of each format's records: "
        + ", ".join(f"{fmt} × {weight:g}" for fmt, weight in config.mix_weights.items())
        + " (fractional weights keep a deterministic, hash-chosen share).",
    }
    return rules[name]


def write_card(folder: Path, spec: CorpusSpec, report: dict, config: BuildConfig) -> None:
    """Write ``folder/README.md`` for the splits that have data files."""
    data = folder / "data"
    files = {p.name: sorted(p.glob("*.parquet")) for p in sorted(data.iterdir())} if data.is_dir() else {}
    splits = [split for split, paths in files.items() if paths]
    tally = report["corpora"][spec.name]
    card = DatasetCardData(
        pretty_name=f"SAYCam {spec.title}",
        **card_licence([SOURCE]),
        task_categories=[spec.task_category],
        size_categories=[size_category(tally["records"])],
        tags=["babyvlm", "saycam", "developmental", "egocentric"],
    )
    if splits:  # a corpus that kept nothing has no data files to point at
        card.configs = [
            {"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}/*.parquet"} for s in splits]}
        ]
        # Besides documenting the corpus, sizes and counts make `datasets` key its cache on this
        # build: it hashes the card, not the files, so two builds in same-named folders would
        # otherwise share one stale cache.
        split_infos = SplitDict()
        for split in splits:
            split_infos.add(SplitInfo(name=split, num_examples=tally["records_by_split"].get(split, 0)))
        info = DatasetInfo(
            features=spec.features,
            splits=split_infos,
            download_size=sum(p.stat().st_size for s in splits for p in files[s]),
        )
        DatasetInfosDict({"default": info}).to_dataset_card_data(card)
    columns = "\n".join(f"| `{column}` | {_type_name(feature)} | {doc} |" for column, feature, doc in spec.columns)
    counts = (
        "\n".join(f"| {split} | {tally['records_by_split'].get(split, 0)} |" for split in splits) or "| (none) | 0 |"
    )
    outcome = f"kept {tally['kept']}; filtered: {_counts(tally['filtered'])}; failed: {_counts(tally['failed'])}"
    status = (
        ""
        if report["complete"]
        else f"\n**Incomplete build**: {len(report['pending_recordings'])} recordings still pending.\n"
    )
    body = f"""# SAYCam — {spec.title}

{spec.description}
{status}
Built by `babyvlm data saycam` (BabyVLM-V2) from a local copy of SAYCam. SAYCam is access-controlled
(Databrary): this folder holds frames and transcripts of that copy, so do not redistribute it.

## Load

```python
from datasets import load_dataset

corpus = load_dataset("path/to/this/folder")
young = corpus["train"].filter(lambda record: record["age_months"] < 12)  # age-stratified
curriculum = corpus["train"].sort("age_months")                           # youngest first
```

## How it was built

{_rules(spec.name, config)}

{_splits_text(config)} Every record carries the recording, the child and the child's age in months.

## Columns

| column | type | description |
|---|---|---|
{columns}

## Counts

| split | records |
|---|---|
{counts}

{_child_counts(tally, splits)}

Utterances (or frames) offered to this corpus: {outcome}. `../build_report.json` lists every failure.

## Raw input layout

Videos `{{child}}_{{YYYYMMDD}}_{{HHMM}}_{{segment}}.{{mp4,mov,avi}}` (child S, A or Y), in one folder or nested;
transcripts with columns recording, start_ms, end_ms, text, confidence (CSV, JSON lines or parquet);
optionally a children table (child, birth_date).
"""
    write_text(folder / "README.md", str(DatasetCard(f"---\n{card.to_yaml()}\n---\n\n{body}")))


def _splits_text(config: BuildConfig) -> str:
    fractions = ", ".join(f"{s} {f:g}" for s, f in config.splits.items())
    if config.hold_out_child is None:
        return (
            f"Splits are assigned per recording by a hash of its name ({fractions}), "
            "so no recording appears in two splits."
        )
    return (
        f"**Leave-one-child-out**: every recording of child {config.hold_out_child} is in the "
        f"`{HELD_OUT_SPLIT}` split, and no other child's; the other children's recordings are assigned by a hash "
        f"of their name ({fractions}), so no recording appears in two splits."
    )


def _child_counts(tally: dict, splits: list[str]) -> str:
    """Records per child and split (the children of the recordings built)."""
    by_child = tally["records_by_child"]
    if not by_child or not splits:
        return "Records per child: none."
    header = "| child | " + " | ".join(splits) + " | total |\n|---|" + "---|" * (len(splits) + 1)
    rows = [
        f"| {child} | " + " | ".join(str(counts.get(s, 0)) for s in splits) + f" | {sum(counts.values())} |"
        for child, counts in by_child.items()
    ]
    return "Records per child:\n\n" + "\n".join([header, *rows])


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items())) or "none"


def _type_name(feature) -> str:
    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, List):
        return f"list of {_type_name(feature.feature)}"
    return "struct" if isinstance(feature, dict) else type(feature).__name__.lower()
