"""DevCV answer parsing and metrics: plain functions, the `evaluate` module and its metric card."""

import doctest
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from babyvlm.evaluate_metrics.devcv import items, parsing
from babyvlm.evaluate_metrics.devcv.items import score_item
from babyvlm.evaluate_metrics.devcv.parsing import (
    normalize_direction,
    parse_direction_lenient,
    parse_letter,
    parse_number,
    parse_number_lenient,
)
from babyvlm.evaluate_metrics.devcv.scores import (
    adjacent_directions,
    chance_normalized,
    lwl_item,
    mean_scores,
    memory_item,
    overall_chance_normalized,
    overall_score,
)
from babyvlm.evaluate_metrics.devcv.tasks import TASKS

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


# Golden cases from the official definitions (ShawnKing98/BabyLLaVA-V2 utils.py `extract_letter`:
# the first `\b([A-Da-d])\b`, upper-cased).
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("b) the second", "B"),
        ("(c)", "C"),
        ("d.", "D"),
        ("The answer is A", "A"),
        ("a) first", "A"),
        ("a cat is in (B)", "A"),  # the first standalone letter, even an article
        ("B's", "B"),
        ("bed", None),
        ("Cat", None),
        ("", None),
        ("E", None),
        ("x (b) then (c)", "B"),
        ("a2", None),
        ("_a", None),  # "_" is a word character for \b
    ],
)
def test_parse_letter_takes_first_standalone_a_to_d(text, expected):
    assert parse_letter(text) == expected


# utils.py `extract_number`: the lower-cased text cut into digit runs and letter runs; the first that is
# digits or one of zero..ten decides.
@pytest.mark.parametrize(
    ("text", "expected", "lenient"),
    [
        ("10", 10, 10),
        ("ten", 10, 10),
        ("Ten.", 10, 10),
        ("eleven", None, 11),
        ("twelve cups", None, 12),
        ("12 cups", 12, 12),
        ("I see 3 dogs", 3, 3),
        ("three or 4", 3, 3),
        ("4 or three", 4, 4),
        ("zero", 0, 0),
        ("3rd", 3, 3),
        ("twenty one", 1, 1),  # "twenty" is no number word: the next token decides
        ("two_cups", 2, 2),
        ("none", None, None),
        ("someone", None, None),
        ("", None, None),
    ],
)
def test_parse_number_takes_first_digits_or_number_word_to_ten(text, expected, lenient):
    assert parse_number(text) == expected
    assert parse_number_lenient(text) == lenient


# utils.py `calc_vdr_task_accuracy` compares whole answers, lower-cased; lmms-eval strips generated answers.
@pytest.mark.parametrize(
    ("text", "expected", "lenient"),
    [
        ("left", "left", "left"),
        (" left", "left", "left"),
        ("Left", "left", "left"),
        ("Top Left\n", "top left", "top left"),
        ("Left.", None, "left"),
        ("top-left", None, "top left"),
        ("top_right", None, "top right"),
        ("Bottom Right corner", None, "bottom right"),
        ("it goes right then top", None, "right"),
        ("upwards", None, None),
        ("leftover", None, None),
    ],
)
def test_vdr_answers_are_compared_whole_lenient_parse_finds_a_phrase(text, expected, lenient):
    assert normalize_direction(text) == expected
    assert parse_direction_lenient(text) == lenient


# utils.py `adjacent_directions_word_mapping`, written out.
OFFICIAL_ADJACENT = {
    "left": {"top left", "left", "bottom left"},
    "right": {"top right", "right", "bottom right"},
    "top": {"top left", "top", "top right"},
    "bottom": {"bottom left", "bottom", "bottom right"},
    "top right": {"top", "top right", "right"},
    "top left": {"top", "top left", "left"},
    "bottom right": {"bottom", "bottom right", "right"},
    "bottom left": {"bottom", "bottom left", "left"},
}


def test_adjacent_sets_are_the_official_ones():
    assert {gold: set(adjacent_directions(gold)) for gold in parsing.DIRECTIONS} == OFFICIAL_ADJACENT


@pytest.mark.parametrize(
    ("output", "gold", "official", "lenient"),
    [
        ("left", "left", (1, 1), (1, 1)),
        (" left", "left", (1, 1), (1, 1)),
        ("Left.", "left", (0, 0), (1, 1)),
        ("top-left", "left", (0, 0), (0, 1)),
        ("top left", "left", (0, 1), (0, 1)),
        ("I think left", "left", (0, 0), (1, 1)),
        ("right", "left", (0, 0), (0, 0)),
    ],
)
def test_vdr_item_official_exact_and_adjacent_with_lenient_extras(output, gold, official, lenient):
    scored = score_item("vdr_open", output, gold)
    assert (scored.scores["acc_exact"], scored.scores["acc_adjacent"]) == official
    assert (scored.extra_scores["acc_exact_lenient"], scored.extra_scores["acc_adjacent_lenient"]) == lenient
    assert scored.unparsable == int(normalize_direction(output) is None)


def test_letters_and_numbers_parse_gold_and_prediction_alike():
    assert score_item("baby_pv", "(B)", "(b) the second image").scores == {"acc": 1.0}
    assert score_item("compare_real", "b) the second", "B").scores == {"acc": 1.0}
    assert score_item("count", "eleven", "11").scores == {"acc": 0.0}
    assert score_item("count", "eleven", "11").extra_scores == {"acc_lenient": 1.0}
    assert score_item("count", "ten cups", "10").scores == {"acc": 1.0}
    # Memory's gold is the letter of the gold turn's last word (utils.py `calc_memory_task_accuracy`).
    golds = [f"the answer is {letter}" for letter in MEMORY_GOLDS]
    assert score_item("memory", MEMORY_GOLDS, golds, MEMORY_LABELS).scores["acc_testing_adjusted"] == 1.0


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


def test_memory_adjusted_counts_learned_labels_tested_exactly_twice_over_base():
    # Round 6 shows no learned label: plant is tested once and cannot count, even answered right.
    once = MEMORY_LABELS[:6] + [["doorknob", "stroller"]] + MEMORY_LABELS[7:]
    assert memory_item(MEMORY_GOLDS, MEMORY_GOLDS, once)["acc_testing_adjusted"] == 4 / 5
    # Round 10 shows bench instead of flora: bench tested three times, flora once; neither counts.
    thrice = MEMORY_LABELS[:9] + [["bench", "glove"]] + MEMORY_LABELS[10:]
    assert memory_item(MEMORY_GOLDS, MEMORY_GOLDS, thrice)["acc_testing_adjusted"] == 3 / 5


def test_memory_rejects_malformed_items():
    with pytest.raises(ValueError, match="15 gold rounds"):
        memory_item(MEMORY_GOLDS[:-1], MEMORY_GOLDS, MEMORY_LABELS)
    with pytest.raises(ValueError, match="leave no testing rounds"):
        memory_item(["A"], ["A"], [["cup"]])


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
        assert metric.compute(predictions=["left", "Top left."], references=["left", "top"]) == {
            "acc_exact": 0.5,
            "acc_adjacent": 0.5,
            "acc_exact_lenient": 0.5,
            "acc_adjacent_lenient": 1.0,
            "unparsable": 1,
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


def test_metric_folder_is_self_contained(tmp_path):
    """A copy of the folder loads with `evaluate.load(<folder>)` where babyvlm cannot be imported at all:
    its helpers are reachable only beside the script, as in evaluate's own metric folders."""
    folder = tmp_path / "devcv"
    shutil.copytree(REPO / METRIC_DIR, folder, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    assert (folder / "requirements.txt").read_text().split() == ["datasets>=4.0.0", "evaluate>=0.4.6"]
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["babyvlm"] = None  # any `import babyvlm...` now raises ImportError
        import evaluate
        pv = evaluate.load({str(folder)!r}, "baby_pv")
        print(pv.compute(predictions=["A", "(b)", "dog"], references=["A", "C", "C"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "{'acc': 0.3333333333333333, 'unparsable': 1}"


def test_metric_folder_imports_only_itself_and_the_standard_library():
    """The helpers beside the metric script import each other relatively and nothing from babyvlm."""
    for path in (REPO / METRIC_DIR).glob("*.py"):
        assert "babyvlm" not in "\n".join(
            line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))
        ), path.name


def test_metric_card_and_docstring_examples(in_repo):
    from babyvlm.evaluate_metrics.devcv import devcv

    card = doctest.testfile(str(REPO / METRIC_DIR / "README.md"), module_relative=False)
    assert card.attempted > 0 and card.failed == 0
    for module in (parsing, items, devcv):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
