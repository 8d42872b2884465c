"""DevCV shortcut audit: answer priors, position bias, gold-equals-query and the pixel solver."""

import json

import numpy as np
import pytest
from babyvlm.dataset_builders.devcv.audit import (
    audit_dataset,
    audit_rows,
    main,
    placement_distance,
)
from babyvlm.dataset_builders.devcv.builder import build_devcv
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from fixtures_devcv import write_split_layout

AUDITED_TASKS = ("leftright", "spatialdetails", "memory", "vdr_binary", "count", "looking_while_listening")


@pytest.fixture(scope="module")
def built(tmp_path_factory, datasets_cache):
    root = tmp_path_factory.mktemp("release") / "saycam"
    write_split_layout(root, AUDITED_TASKS, splits=("test",), n=6)
    output = tmp_path_factory.mktemp("built") / "devcv"
    build_devcv([root], output, progress=False)
    return output, {result.task: result for result in audit_dataset(output, cache_dir=datasets_cache)}


def test_query_option_shortcuts(built):
    _, results = built
    # Fixture Left/Right: the gold option is a byte copy of the query, distractors are mirrored.
    assert results["leftright"].gold_is_query == 1.0 and results["leftright"].pixel_solver == 1.0
    # Fixture Spatial Details: the query is a crop of the gold frame, never identical to it.
    assert results["spatialdetails"].gold_is_query == 0.0 and results["spatialdetails"].pixel_solver == 1.0
    assert results["memory"].gold_is_query is None and results["count"].pixel_solver is None


def test_answer_priors_and_positions(built):
    _, results = built
    memory = results["memory"]  # every fixture item answers A, B, A
    assert memory.majority == 1.0 and memory.top_answer == "A"
    assert memory.positions == pytest.approx({"A": 2 / 3, "B": 1 / 3})
    vdr = results["vdr_binary"]  # answers alternate between the two offered words
    assert vdr.majority == 0.5 and vdr.positions == {"A": 0.5, "B": 0.5}
    count = results["count"]  # six different counts
    assert count.top_answer_rate == pytest.approx(1 / 6) and count.positions == {}
    assert results["looking_while_listening"].items == 6 and results["looking_while_listening"].majority == 0.0
    assert all(result.chance == TASKS[task].chance and result.split == "test" for task, result in results.items())


def test_position_bias_of_a_constant_letter():
    rows = [
        {
            "source": "nih",
            "task": "localize",
            "split": "test",
            "answer": ["C"],
            "choices": ["A", "B", "C", "D"],
            "images": [],
        }
        for _ in range(4)
    ]
    (result,) = audit_rows(rows)
    assert (result.top_answer, result.top_answer_rate, result.majority) == ("C", 1.0, 1.0)
    assert result.positions == {"C": 1.0}


def test_placement_distance_finds_a_crop_where_it_lies():
    frame = np.random.default_rng(0).uniform(0, 255, (30, 40))
    other = np.random.default_rng(1).uniform(0, 255, (30, 40))
    crop = frame[5:17, 20:31]
    assert placement_distance(crop, frame) == pytest.approx(0, abs=1e-6)
    assert placement_distance(crop, other) > 100
    assert placement_distance(frame, frame) == 0 and placement_distance(frame, np.fliplr(frame)) > 0
    assert placement_distance(np.zeros((60, 80)), np.zeros((30, 40))) == 0  # a larger query is resized to the option


def test_audit_is_in_the_card_and_the_cli_writes_json(built, tmp_path, capsys):
    output, results = built
    card = (output / "README.md").read_text()
    assert "| saycam | leftright | test | 6 | 33.3% |" in card
    assert main([str(output), "--json", str(tmp_path / "audit.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["source", "task", "split"]
    assert {entry["task"] for entry in json.loads((tmp_path / "audit.json").read_text())} == set(results)


def test_the_builder_prints_its_audit_at_the_end_and_records_it(tmp_path, capsys):
    from babyvlm.dataset_builders.devcv.cli import main as build_main

    root = tmp_path / "release" / "saycam"
    write_split_layout(root, ("leftright", "count"), splits=("test",), n=3)
    assert build_main([str(root), "--output", str(tmp_path / "devcv"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    table = printed.split("Shortcut audit (compare with chance):\n")[1].splitlines()
    assert table[0].split()[:3] == ["source", "task", "split"]
    assert {tuple(line.split()[:3]) for line in table[1:3]} == {
        ("saycam", "leftright", "test"),
        ("saycam", "count", "test"),
    }
    recorded = json.loads((tmp_path / "devcv" / "build_report.json").read_text())["audit"]
    assert {entry["task"] for entry in recorded} == {"leftright", "count"}

    assert build_main([str(root), "--output", str(tmp_path / "unaudited"), "--quiet", "--no-audit"]) == 0
    assert "Shortcut audit: not run (--no-audit)" in capsys.readouterr().out
    assert json.loads((tmp_path / "unaudited" / "build_report.json").read_text())["audit"] is None


@pytest.mark.slow
def test_audit_of_the_released_samples(tmp_path):
    from conftest import SHARED_SAMPLES

    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"DevCV samples not found at {SHARED_SAMPLES}")
    report = build_devcv([SHARED_SAMPLES / "saycam"], tmp_path / "devcv", progress=False)
    results = audit_dataset(tmp_path / "devcv")
    assert {(r.task, r.split) for r in results} == {
        (task, split) for task, splits in report.counts().items() for split in splits
    }
    # Known flaw of the release (dataset_builders/devcv/README.md, "The released toolbox"): Left/Right is
    # solvable by pixel matching alone.
    assert all(r.pixel_solver > TASKS["leftright"].chance for r in results if r.task == "leftright")
