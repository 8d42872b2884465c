"""Leave-one-child-out on the toy world (three children, SAYCam layout): the SAYCam builder puts one child's every
record in the `held_out` split and no one else's; the DevCV generator makes items from that child only."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from babyvlm.dataset_builders.annotations import load_annotations
from babyvlm.dataset_builders.devcv.generators.cli import main as generate_main
from babyvlm.dataset_builders.saycam import cli as saycam_cli
from babyvlm.dataset_builders.saycam.build import BuildInputs, build_saycam
from babyvlm.dataset_builders.saycam.config import BuildConfig
from babyvlm.dataset_builders.saycam.splits import HELD_OUT_SPLIT
from babyvlm.dataset_builders.toyworld.generate import generate_toyworld
from datasets import load_dataset

HELD_OUT = "S"
CORPORA = ("utterances", "frames", "image_utterance", "interleaved", "mix")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw") / "world"
    generate_toyworld(root, seed=0, scale="small")
    return root


def _inputs(world: Path) -> BuildInputs:
    return BuildInputs(world / "videos", world / "transcripts.csv", world / "children.csv")


def _records(output: Path, corpus: str) -> dict[str, list[tuple[str, str]]]:
    """split -> (id, child) of every record, read from the parquet files themselves."""
    by_split = {}
    for folder in sorted((output / corpus / "data").iterdir()):
        by_split[folder.name] = [
            (row["id"], row["child"])
            for path in sorted(folder.glob("*.parquet"))
            for row in pq.read_table(path, columns=["id", "child"]).to_pylist()
        ]
    return by_split


@pytest.fixture(scope="module")
def builds(world, tmp_path_factory) -> tuple[Path, Path, dict]:
    """The same corpora built with every child split by hash, and with child S held out."""
    root = tmp_path_factory.mktemp("builds")
    pooled, held = root / "pooled", root / "held"
    build_saycam(_inputs(world), pooled, BuildConfig(corpora=CORPORA), progress=False)
    report = build_saycam(_inputs(world), held, BuildConfig(corpora=CORPORA, hold_out_child=HELD_OUT), progress=False)
    return pooled, held, report


def test_every_record_of_the_held_out_child_and_no_other_is_in_the_held_out_split(builds):
    pooled, held, report = builds
    for corpus in CORPORA:
        splits = _records(held, corpus)
        assert {child for _, child in splits[HELD_OUT_SPLIT]} == {HELD_OUT}, corpus
        for split, records in splits.items():
            if split != HELD_OUT_SPLIT:
                assert records and HELD_OUT not in {child for _, child in records}, (corpus, split)
        # Independently: the child's records in the build without a held-out child, whatever split they fell in.
        child_ids = sorted(i for records in _records(pooled, corpus).values() for i, c in records if c == HELD_OUT)
        assert sorted(i for i, _ in splits[HELD_OUT_SPLIT]) == child_ids, corpus


def test_the_other_children_keep_the_splits_their_recordings_hash_to(builds):
    pooled, held, _ = builds
    for corpus in CORPORA:
        before = {split: sorted(i for i, c in rs if c != HELD_OUT) for split, rs in _records(pooled, corpus).items()}
        after = {
            split: sorted(i for i, _ in rs) for split, rs in _records(held, corpus).items() if split != HELD_OUT_SPLIT
        }
        assert after == {split: ids for split, ids in before.items() if ids}, corpus


def test_report_and_card_name_the_held_out_child_and_count_records_per_child(builds):
    _, held, report = builds
    assert report["hold_out_child"] == HELD_OUT == report["config"]["hold_out_child"]
    assert json.loads((held / "build_report.json").read_text()) == report
    assert report["recordings"]["by_child"] == {"A": 2, "S": 2, "Y": 2}
    assert report["recordings"]["by_split"][HELD_OUT_SPLIT] == 2
    for corpus in CORPORA:
        counted: dict[str, Counter] = {}
        for split, records in _records(held, corpus).items():
            for _, child in records:
                counted.setdefault(child, Counter())[split] += 1
        tally = report["corpora"][corpus]
        assert tally["records_by_child"] == {child: dict(counts) for child, counts in sorted(counted.items())}
        assert tally["records_by_split"][HELD_OUT_SPLIT] == sum(counted[HELD_OUT].values())
        # The card's split sizes are what `load_dataset` checks the files against.
        loaded = load_dataset(str(held / corpus), cache_dir=str(held.parent / ".hf_cache"))
        assert {split: len(rows) for split, rows in loaded.items()} == {
            s: n for s, n in tally["records_by_split"].items() if n
        }
        card = (held / corpus / "README.md").read_text()
        assert f"every recording of child {HELD_OUT} is in the `{HELD_OUT_SPLIT}` split" in card
        splits = sorted(counted[HELD_OUT] | counted["A"] | counted["Y"])
        for child, counts in sorted(counted.items()):
            row = " | ".join(str(counts.get(split, 0)) for split in splits)
            assert f"| {child} | {row} | {sum(counts.values())} |" in card, (corpus, child)


def _saycam(world: Path, output: Path, *extra: str) -> int:
    argv = ["--videos", world / "videos", "--transcripts", world / "transcripts.csv", "--output", output]
    return saycam_cli.main([*map(str, argv), "--corpora", "utterances", "--no-progress", *extra])


def test_holding_out_a_child_without_recordings_is_one_line_naming_the_children_recorded(world, tmp_path, capsys):
    only_s = tmp_path / "only_s"
    shutil.copytree(world / "videos" / "S", only_s / "videos")
    with open(world / "transcripts.csv", newline="") as source:
        rows = [row for row in csv.DictReader(source) if row["recording"].startswith("S_")]
    with open(only_s / "transcripts.csv", "w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert _saycam(only_s, tmp_path / "out", "--hold-out-child", "A") == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "child 'A' to hold out has no recording" in error
    assert error.endswith("the children recorded are S")
    assert _saycam(world, tmp_path / "out", "--hold-out-child", "Q") == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.endswith("unknown child 'Q' to hold out; the children are S, A, Y")
    assert not (tmp_path / "out").exists()


def _recordings_in(value) -> set[str]:
    if isinstance(value, dict):
        return {value["recording"]} if "recording" in value else set().union(*map(_recordings_in, value.values()))
    if isinstance(value, list):
        return set().union(*map(_recordings_in, value)) if value else set()
    return set()


def test_generated_items_come_from_the_held_out_child_only(world, tmp_path, capsys):
    output = tmp_path / "devcv_s"
    argv = ["--annotations", str(world), "--output", str(output), "--child", HELD_OUT, "--split-fractions", "test=1"]
    assert generate_main([*argv, "--items-per-task", "6", "--no-audit"]) == 0
    annotations = load_annotations(world / "annotations")
    of_child = {name for name, info in annotations.recordings.items() if info.child == HELD_OUT}
    report = json.loads((output / "generation_report.json").read_text())
    assert report["settings"]["children"] == [HELD_OUT] and set(report["recordings"]["test"]) == of_child
    used = set()
    for path in sorted((output / "data").glob("*/test-*.parquet")):
        for cell in pq.read_table(path, columns=["provenance"])["provenance"].to_pylist():
            used |= _recordings_in(json.loads(cell))
    assert report["written"] > 0 and used and used <= of_child
    assert f"Items come only from the recordings of child {HELD_OUT}" in (output / "README.md").read_text()


def test_generating_from_an_unknown_child_is_one_line_naming_the_known_ones(world, tmp_path, capsys):
    assert generate_main(["--annotations", str(world), "--output", str(tmp_path / "out"), "--child", "Q"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no annotated recording of child 'Q'; the annotations' children are A, S, Y" in error
    assert not (tmp_path / "out").exists()
