"""A run's n, intervals and p-values from its prediction entries: clustering, sources, groups, overall."""

import json

import pytest
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.runner import summarize
from babyvlm.evaluate_metrics.units import item_units
from scipy import stats


def _entries(task: str, correct: list[int], sources=None, recordings=None, rounds: int = 1) -> list[dict]:
    metric = TASKS[task].primary_metric
    entries = []
    for k, value in enumerate(correct):
        record = {
            "id": f"{task}_{k}",
            "source": (sources or ["saycam"] * len(correct))[k],
            "provenance": json.dumps({"recording": recordings[k]}) if recordings else "{}",
        }
        unit_kind, units = item_units(record)
        entries.append(
            {
                "id": record["id"],
                "scores": {metric: float(value)},
                "gold": ["A"] * rounds,
                "source": record["source"],
                "unit_kind": unit_kind,
                "units": units,
                "unparsable": 0,
                "extra_scores": {},
                **({"labels_fallback": False} if rounds > 1 else {}),
            }
        )
    return entries


def test_summary_scores_per_source_and_group_and_clusters_by_recording():
    correct = [1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0]
    sources = ["saycam"] * 8 + ["ego4d"] * 4
    recordings = [f"rec{k // 3}" for k in range(12)]
    entries = {TASKS["count"]: _entries("count", correct, sources, recordings)}
    children = {TASKS["count"]: {"child": {f"count_{k}": "SAM" if k < 6 else "ALICE" for k in range(12)}}}
    task = summarize(entries, children, n_resamples=200)["tasks"]["baby_count"]
    assert (task["score"], task["n"], task["cluster_unit"], task["n_clusters"]) == (8 / 12, 12, "recording", 4)
    assert task["ci_low"] <= task["score"] <= task["ci_high"]
    assert task["p_value"] == pytest.approx(stats.binomtest(8, 12, 1 / 12, alternative="greater").pvalue)
    assert {source: group["n"] for source, group in task["by_source"].items()} == {"saycam": 8, "ego4d": 4}
    assert task["by_source"]["ego4d"]["score"] == pytest.approx(3 / 4)
    assert {child: group["score"] for child, group in task["by_child"].items()} == {"SAM": 5 / 6, "ALICE": 3 / 6}


def test_memory_counts_objects_and_lwl_items_against_chance():
    memory = _entries("memory", [0.8, 0.6, 1.0], rounds=15)
    lwl = _entries("looking_while_listening", [1, 0, 1, 1, 0, 0])
    summary = summarize({TASKS["memory"]: memory, TASKS["looking_while_listening"]: lwl}, n_resamples=200)
    task = summary["tasks"]["baby_memory"]
    assert (task["n"], task["objects"], task["cluster_unit"]) == (3, 15, "item")
    assert task["p_value"] == pytest.approx(stats.binomtest(12, 15, 1 / 4, alternative="greater").pvalue)
    lwl_task = summary["tasks"]["baby_winoground"]
    assert lwl_task["p_value"] == pytest.approx(stats.binomtest(3, 6, 1 / 6, alternative="greater").pvalue)
    # Two of the 11 leaderboard tasks: the official overall counts the others 0 and is marked not comparable.
    official, evaluated = summary["overall_statistics"], summary["overall_evaluated"]
    assert summary["overall"] == pytest.approx((0.8 + 0.5) / 11) and not official["comparable"]
    assert "p_value" not in official and len(official["missing"]) == 9
    assert evaluated["score"] == pytest.approx((0.8 + 0.5) / 2) and evaluated["n"] == 9
    assert evaluated["ci_low"] <= evaluated["score"] <= evaluated["ci_high"]


def test_the_same_seed_gives_the_same_summary():
    entries = {TASKS["count"]: _entries("count", [1, 0, 1, 1, 0, 1, 1, 0, 0, 1])}
    first, again = summarize(entries, n_resamples=300, seed=4), summarize(entries, n_resamples=300, seed=4)
    assert first == again
    assert first["bootstrap"] == {"n_resamples": 300, "seed": 4}
