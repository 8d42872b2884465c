"""DevCV answer parsing and metrics: plain functions, the `evaluate` module and its metric card."""

import doctest
from pathlib import Path

import pytest
from babyvlm.dataset_builders.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.devcv import items, parsing
from babyvlm.evaluate_metrics.devcv.items import score_item
from babyvlm.evaluate_metrics.devcv.parsing import parse_direction, parse_letter, parse_number
from babyvlm.evaluate_metrics.devcv.scores import (
    chance_normalized,
    is_adjacent,
    lwl_item,
    mean_scores,
    memory_item,
    overall_chance_normalized,
    overall_score,
)

REPO = Path(__file__).resolve().parents[1]
METRIC_DIR = "evaluate_metrics/devcv"

# A released SAYCam Memory item (test split, memory_task_168): gold answers and object labels per round.
MEMORY_GOLDS = ["A", "B", "A", "B", "B", "B", "A", "B", "B", "B", "B", "A", "A", "A", "A"]
MEMORY_LABELS = [
    ["plant"],
    ["plant", "bench"],
    ["flora", "bench"],
    ["flora", "notebook"],
    ["notebook", "boot"],
    ["bench", "stroller"],
    ["doorknob", "plant"],
    ["notebook", "piano"],
    ["boot", "newspaper"],
    ["flora", "glove"],
    ["boot", "tv"],
    ["bike", "flora"],
    ["bag", "bench"],
    ["mirror", "plant"],
    ["hair", "notebook"],
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(c)", "C"),
        ("d.", "D"),
        ("The answer is A", "A"),
        ("a) first", "A"),
        ("bed", None),
        ("Cat", None),
        ("", None),
        ("E", None),
        ("x (b) then (c)", "B"),
        ("a2", None),
    ],
)
def test_parse_letter_takes_first_standalone_a_to_d(text, expected):
    assert parse_letter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", 10),
        ("ten", 10),
        ("Twelve", 12),
        ("I see 3 dogs", 3),
        ("three or 4", 3),
        ("4 or three", 4),
        ("zero", 0),
        ("none", None),
        ("someone", None),
        ("", None),
    ],
)
def test_parse_number_takes_first_digits_or_number_word(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("top-left", "top left"),
        ("Bottom Right corner", "bottom right"),
        ("left", "left"),
        ("it goes right then top", "right"),
        ("top_right", "top right"),
        ("upwards", None),
        ("leftover", None),
    ],
)
def test_parse_direction_prefers_compound_directions(text, expected):
    assert parse_direction(text) == expected


def test_adjacent_accepts_compass_neighbours_only():
    assert {d for d in parsing.DIRECTIONS if is_adjacent(d, "left")} == {"top left", "left", "bottom left"}
    assert {d for d in parsing.DIRECTIONS if is_adjacent(d, "top right")} == {"top", "top right", "right"}
    assert not is_adjacent(None, "left")


def test_memory_released_item_scores():
    assert memory_item(MEMORY_GOLDS, MEMORY_GOLDS, MEMORY_LABELS) == {
        "acc_learning": 1.0,
        "acc_testing_raw": 1.0,
        "acc_testing_adjusted": 1.0,
    }
    answers = list(MEMORY_GOLDS)
    answers[1] = None  # a learning round, unparsable
    answers[5] = "A"  # bench, first test
    answers[12] = "B"  # bench, second test: the same learned object, so adjusted loses only one object
    answers[8] = "A"  # boot, first test
    assert memory_item(answers, MEMORY_GOLDS, MEMORY_LABELS) == {
        "acc_learning": 4 / 5,
        "acc_testing_raw": 7 / 10,
        "acc_testing_adjusted": 3 / 5,
    }


def test_memory_thirty_round_item_learns_ten_objects():
    golds, labels = ["A"] * 10, [[f"learned {k}"] for k in range(10)]
    for round_index in range(20):
        learned, new = f"learned {round_index % 10}", f"new {round_index}"
        golds.append("AB"[round_index % 2])
        labels.append([new, learned] if golds[-1] == "A" else [learned, new])
    answers = list(golds)
    answers[10] = "B"
    assert memory_item(answers, golds, labels) == {
        "acc_learning": 1.0,
        "acc_testing_raw": 19 / 20,
        "acc_testing_adjusted": 9 / 10,
    }


def test_memory_rejects_malformed_items():
    with pytest.raises(ValueError, match="15 gold rounds"):
        memory_item(MEMORY_GOLDS[:-1], MEMORY_GOLDS, MEMORY_LABELS)
    with pytest.raises(ValueError, match="round 6"):
        memory_item(MEMORY_GOLDS, MEMORY_GOLDS, MEMORY_LABELS[:5] + [["bench"]] + MEMORY_LABELS[6:])


@pytest.mark.parametrize(
    ("losses", "expected"),
    [
        ([[1, 2], [3, 0.5]], (1, 1, 1)),  # both images prefer their phrase, both phrases their image
        ([[1, 2], [0.5, 0.4]], (1, 0, 0)),  # image 1 makes both phrases likelier: text only
        ([[1, 0.9], [2, 0.5]], (0, 1, 0)),  # phrase 1 is likelier even after image 0: image only
        ([[2, 1], [1, 2]], (0, 0, 0)),
        ([[1, 1], [1, 1]], (0, 0, 0)),  # ties are not wins
    ],
)
def test_lwl_scores_from_loss_matrix(losses, expected):
    scores = lwl_item(losses)
    assert (scores["text_score"], scores["image_score"], scores["group_score"]) == expected


def test_overall_averages_eleven_primary_metrics_missing_counts_zero():
    perfect = {task.harness_key: {task.primary_metric: 1.0} for task in TASKS.values()}
    assert overall_score(perfect) == pytest.approx(1.0)
    assert overall_score({"baby_pv": {"acc": 1.0}}) == pytest.approx(1 / 11)
    # Only the primary metric counts (acc_exact, not acc_adjacent), and subitizing is not in it.
    assert overall_score({"baby_vdr_open": {"acc_adjacent": 1.0}, "baby_subitize": {"acc": 1.0}}) == 0.0


def test_chance_normalisation():
    at_chance = {task.harness_key: {task.primary_metric: task.chance} for task in TASKS.values()}
    assert overall_chance_normalized(at_chance) == pytest.approx(0.0)
    assert chance_normalized(1.0, 0.25) == 1.0
    assert chance_normalized(0.0, 0.5) == -1.0


def test_score_item_counts_unparsable_answers_wrong():
    assert score_item("baby_count", "many", "3").scores == {"acc": 0.0}
    assert score_item("baby_count", "many", "3").unparsable == 1
    memory = score_item("memory", ["x"] * 15, MEMORY_GOLDS, MEMORY_LABELS)
    assert memory.unparsable == 15 and memory.scores["acc_testing_adjusted"] == 0.0


def test_score_item_rejects_malformed_gold():
    with pytest.raises(ValueError, match="gold answer 'purple'"):
        score_item("vdr_binary", "left", "purple")


def test_mean_scores_needs_items():
    assert mean_scores([{"acc": 1.0}, {"acc": 0.0}]) == {"acc": 0.5}
    with pytest.raises(ValueError, match="no items"):
        mean_scores([])


@pytest.fixture
def in_repo(monkeypatch):
    """`evaluate.load` takes the module by a path relative to the repository root."""
    monkeypatch.chdir(REPO)


def test_evaluate_module_by_any_task_name(in_repo):
    import evaluate

    for name in ("vdr_binary", "baby_vdr_binary", "vdr-binary"):
        metric = evaluate.load(METRIC_DIR, name)
        assert metric.compute(predictions=["left", "top left"], references=["left", "right"]) == {
            "acc_exact": 0.5,
            "acc_adjacent": 0.5,
            "unparsable": 0,
        }
    with pytest.raises(KeyError, match="unknown DevCV task 'colour'"):
        evaluate.load(METRIC_DIR, "colour")


def test_evaluate_module_matches_plain_functions(in_repo):
    import evaluate

    answers = list(MEMORY_GOLDS)
    answers[5] = "A"
    memory = evaluate.load(METRIC_DIR, "memory")
    expected = memory_item(answers, MEMORY_GOLDS, MEMORY_LABELS)
    assert memory.compute(predictions=[answers], references=[MEMORY_GOLDS], labels=[MEMORY_LABELS]) == {
        **expected,
        "unparsable": 0,
    }


def test_metric_card_and_docstring_examples(in_repo):
    from babyvlm.evaluate_metrics.devcv import devcv

    card = doctest.testfile(str(REPO / METRIC_DIR / "README.md"), module_relative=False)
    assert card.attempted > 0 and card.failed == 0
    for module in (parsing, items, devcv):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
