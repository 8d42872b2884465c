"""Exposure figures equal an independent count over the corpus; the curriculum orders by age, deterministically."""

import datasets
import pytest

from babyvlm.training.exposure import Curriculum, ExposureTally, age_folder_name, age_thresholds, with_exposure_columns


def utterance_rows():
    ages = [(12.0, "S"), (6.5, "A"), (12.0, "A"), (30.0, "Y"), (6.5, "S")]
    return [
        {
            "id": f"u{i}",
            "recording": f"{child}_{i}",
            "child": child,
            "age_months": age,
            "text": "a b c"[: 1 + 2 * i % 5],
            "start_ms": 1000 * i,
            "end_ms": 1000 * i + 1500,
        }
        for i, (age, child) in enumerate(ages)
    ]


def test_figures_of_an_utterance_corpus_equal_an_independent_count():
    rows = utterance_rows()
    dataset = with_exposure_columns(datasets.Dataset.from_list(rows))
    tally = ExposureTally()
    tally.add_records(list(dataset))
    assert tally.sums["utterances"] == len(rows)
    assert tally.sums["words"] == sum(len(row["text"].split()) for row in rows)
    assert tally.sums["video_seconds"] == pytest.approx(sum((r["end_ms"] - r["start_ms"]) / 1000 for r in rows))
    assert tally.age_range == [6.5, 30.0]


def test_chronological_order_pools_children_and_breaks_ties_by_child_then_position():
    dataset = with_exposure_columns(datasets.Dataset.from_list(utterance_rows()))
    ordered = Curriculum.parse("chronological").order(dataset, seed=0)
    assert ordered["id"] == ["u1", "u4", "u2", "u0", "u3"]
    assert Curriculum.parse("child=S").order(dataset, seed=0)["id"] == ["u4", "u0"]
    windowed = Curriculum.parse("chronological", 12).order(dataset, seed=3)
    assert (
        windowed["id"][-1] == "u3" and windowed["id"] == Curriculum.parse("chronological", 12).order(dataset, 3)["id"]
    )


def test_a_corpus_without_ages_is_refused_naming_it():
    with pytest.raises(ValueError, match="dataset devcv/count: curriculum 'chronological' needs an `age_months`"):
        Curriculum.parse("chronological").check_source(datasets.Dataset.from_list([{"id": "x"}]), "dataset devcv/count")


def test_age_checkpoints_are_named_and_spaced_by_months():
    assert [age_folder_name(a) for a in (9, 12, 10.5)] == ["age-09mo", "age-12mo", "age-10.5mo"]
    assert age_thresholds(None, 3, 6.5, 14) == [9, 12]
    assert age_thresholds([18, 9], None, 6, 32) == [9.0, 18.0]
