"""A run's n, intervals and p-values from its prediction entries: clustering, sources, groups, overall."""

import json

import pytest
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.report import markdown_table
from babyvlm.evaluate_metrics.runner import summarize
from babyvlm.evaluate_metrics.units import item_unit
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
        unit_kind, unit = item_unit(record)
        entries.append(
            {
                "id": record["id"],
                "scores": {metric: float(value)},
                "gold": ["A"] * rounds,
                "source": record["source"],
                "unit_kind": unit_kind,
                "unit": unit,
                "unparsable": 0,
                "extra_scores": {},
                **({"labels_fallback": False} if rounds > 1 else {}),
            }
        )
    return entries


def test_summary_scores_per_source_and_group_and_clusters_by_recording():
    correct = [1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0]
    sources = ["saycam"] * 8 + ["ego4d"] * 4
    recordings = [f"rec{k // 2}" for k in range(12)]
    entries = {TASKS["count"]: _entries("count", correct, sources, recordings)}
    children = {TASKS["count"]: {"child": {f"count_{k}": "SAM" if k < 6 else "ALICE" for k in range(12)}}}
    task = summarize(entries, children, n_resamples=200)["tasks"]["baby_count"]
    assert (task["score"], task["n"], task["cluster_unit"], task["n_clusters"]) == (8 / 12, 12, "recording", 6)
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


def _pv_entries(targets: list[str], distractors: list[list[str]], correct: list[int]) -> list[dict]:
    """Picture Vocabulary entries whose target crop comes from ``targets[k]`` and distractors from others."""
    entries = []
    for k, (target, others, value) in enumerate(zip(targets, distractors, correct)):
        record = {
            "id": f"picture_vocabulary_{k}",
            "source": "toyworld",
            "provenance": json.dumps(
                {"target": {"recording": target}, "distractors": [{"recording": other} for other in others]}
            ),
        }
        unit_kind, unit = item_unit(record)
        entries.append(
            {"id": record["id"], "scores": {"acc": float(value)}, "gold": ["A"], "source": "toyworld"}
            | {"unit_kind": unit_kind, "unit": unit, "unparsable": 0, "extra_scores": {}}
        )
    return entries


def test_items_cluster_by_their_target_not_by_their_distractors():
    # 24 items over 6 target recordings; every item's distractors come from every other recording, which
    # would join the whole task into one cluster if distractors counted.
    recordings = [f"S_2020010{r}_0900_01" for r in range(6)]
    targets = [recordings[k % 6] for k in range(24)]
    distractors = [[other for other in recordings if other != target][:3] for target in targets]
    correct = [int(k % 6 < 3 or k % 5 == 0) for k in range(24)]  # recordings 0-2 right, 3-5 mostly wrong
    task = summarize({TASKS["picture_vocabulary"]: _pv_entries(targets, distractors, correct)}, n_resamples=300)[
        "tasks"
    ]["baby_pv"]
    assert (task["cluster_unit"], task["n_clusters"], task["items_without_unit"]) == ("recording", 6, 0)
    assert "cluster_note" not in task and task["ci_high"] - task["ci_low"] > 0.1


@pytest.mark.parametrize(
    ("targets", "note"),
    [
        (["rec_a"] * 6 + ["rec_b"] * 6, "resampled by item: 2 clusters are too few to resample (fewer than 5)"),
        (["rec_a"] * 14 + [f"rec_{k}" for k in range(6)], "resampled by item: one recording holds 14 of the 20 items"),
    ],
)
def test_too_few_units_are_set_aside_for_items_with_a_note(targets, note):
    correct = [k % 3 != 0 for k in range(len(targets))]
    summary = summarize({TASKS["picture_vocabulary"]: _pv_entries(targets, [[]] * len(targets), correct)})
    task = summary["tasks"]["baby_pv"]
    assert (task["cluster_unit"], task["n_clusters"], task["cluster_note"]) == ("item", len(targets), note)
    assert task["ci_high"] > task["ci_low"]
    assert "Resampled by item, the units being too few: Picture Vocabulary" in markdown_table(summary)


@pytest.mark.parametrize(
    ("record", "unit"),
    [
        ({"id": "S_20141015_2328_02_clip_009_original", "source": "saycam"}, ("recording", "S_20141015_2328_02")),
        ({"id": "A_20131127_1414_02_clip_000", "source": "saycam"}, ("recording", "A_20131127_1414_02")),
        (
            {"id": "count_4", "source": "saycam", "image_paths": ["frames/Y_20190426_1412_01/000312.jpg"]},
            ("recording", "Y_20190426_1412_01"),
        ),
        (
            {"id": "vdr_7", "source": "ego4d", "gif": "gifs/549770ba-bca9-40cf-b09d-9c6d00432557/342_474_hoop.gif"},
            ("video", "549770ba-bca9-40cf-b09d-9c6d00432557"),
        ),
        ({"id": "S_20141015_2328_02_clip_009", "source": "nih"}, ("item", "")),  # stimuli come from no recording
        (
            {"id": "picture_vocabulary_000756", "source": "saycam", "image_paths": ["images/pv_0000_0.png"]},
            ("item", ""),
        ),
        ({"id": "count_3", "source": "saycam", "provenance": "not json"}, ("item", "")),
    ],
)
def test_released_ids_and_paths_name_their_unit_per_source(record, unit):
    assert item_unit(record) == unit


def test_released_samples_cluster_vdr_by_recording_or_video_and_the_rest_by_item(devcv_samples):
    kinds = {}
    for path in sorted(devcv_samples.glob("**/data.json")):
        source, task = path.relative_to(devcv_samples).parts[0], path.parent.name
        for item in json.loads(path.read_text()):
            record = {"id": item["id"], "source": source, "gif": item.get("gif", ""), "image_paths": item["image"]}
            kinds.setdefault((source, task.startswith("vdr")), set()).add(item_unit(record)[0])
    assert kinds == {
        ("saycam", True): {"recording"},
        ("saycam", False): {"item"},
        ("ego4d", True): {"video"},
        ("ego4d", False): {"item"},
    }
