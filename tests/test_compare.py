"""babyvlm compare: several runs side by side (tables, plots, domains, count by number)."""

import json

import numpy as np
import pytest
from babyvlm.evaluate_metrics.compare import compare_runs, main, read_run
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.paired import compare_pair
from babyvlm.evaluate_metrics.runner import evaluate_devcv
from babyvlm.evaluate_metrics.statistics import TaskSample
from PIL import Image

from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

RUN = {"max_new_tokens": 3, "progress": False, "batch_size": 8}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny models, each evaluated on a "SAYCam" and an "Ego4D" folder, plus a Picture-Vocabulary-only run."""
    root = tmp_path_factory.mktemp("compare")
    folders = {
        domain: write_devcv_folder(
            root / f"{domain}-devcv",
            {
                "picture_vocabulary": synthetic_items("pv", 4, seed=seed),
                "count": synthetic_items("count", 8, seed=seed),
            },
        )
        for seed, domain in enumerate(["saycam", "ego4d"])
    }
    outputs = {}
    for seed in (0, 1):
        model = save_tiny_llava(root / f"model-{seed}", seed=seed)
        for domain, data in folders.items():
            outputs[seed, domain] = root / f"run-{seed}-{domain}"
            evaluate_devcv(model, data, outputs[seed, domain], **RUN)
    outputs["pv-only"] = root / "run-pv-only"
    evaluate_devcv(root / "model-0", folders["saycam"], outputs["pv-only"], tasks=["pv"], **RUN)
    return outputs


def score_cell(task: dict) -> str:
    return f"{task['score']:.3f} [{task['ci_low']:.3f}, {task['ci_high']:.3f}] (n={task['n']})"


@pytest.mark.slow
def test_comparison_table_and_plots(runs, tmp_path):
    specs = [str(runs[seed, domain]) for seed in (0, 1) for domain in ("saycam", "ego4d")]
    specs.append(f"PV only={runs['pv-only']}")
    written = compare_runs(specs, tmp_path, human={"baby_pv": 0.98})
    assert sorted(path.name for path in written) == sorted(
        [
            "comparison.md",
            "comparison.html",
            "compare_tasks.png",
            "compare_overall.png",
            "compare_domains.png",
            "count_by_number.png",
        ]
    )
    for path in written:
        if path.suffix == ".png":
            assert Image.open(path).size[0] > 100

    text = (tmp_path / "comparison.md").read_text()
    table = text.split("\n\n")[0].splitlines() + ["", ""]  # the scores table (the paired tests follow)
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == [
        "task",
        "metric",
        "chance",
        "human",
        "model-0 (SAYCam)",
        "model-0 (Ego4D)",
        "model-1 (SAYCam)",
        "model-1 (Ego4D)",
        "PV only (SAYCam)",
    ]
    rows = {row.split("|")[1].strip(): [cell.strip() for cell in row.strip("|").split("|")] for row in table[2:-2]}
    summaries = [json.loads((runs[key] / "summary.json").read_text()) for key in [*list(runs)[:4], "pv-only"]]
    pv, count = rows["Picture Vocabulary"], rows["Object Counting"]
    assert pv[2:4] == ["0.250", "0.980"]
    assert pv[4:] == [score_cell(summary["tasks"]["baby_pv"]) for summary in summaries]
    assert count[4:8] == [score_cell(summary["tasks"]["baby_count"]) for summary in summaries[:4]]
    assert count[8] == "n/a"  # the PV-only run has no counting score
    overall = rows["**Overall**"][4:]
    assert all(cell.startswith(f"**{summary['overall']:.3f}** [") for cell, summary in zip(overall, summaries))
    assert [cell.split("not comparable: ")[1] for cell in overall] == ["9 tasks missing)"] * 4 + ["10 tasks missing)"]

    # Every pair is tested; runs over different data folders are refused for the paired test, named.
    assert text.count("### ") == 10
    pair = text.split("### model-0 (SAYCam) vs model-1 (SAYCam)")[1].split("###")[0]
    assert "| Picture Vocabulary | 4 |" in pair and "McNemar (exact)" in pair and "Warning" not in pair
    assert "Overall (mean of the 2 leaderboard tasks both ran)" in pair and "paired bootstrap" in pair
    across = text.split("### model-0 (SAYCam) vs model-0 (Ego4D)")[1].split("###")[0]
    assert "Warning: Picture Vocabulary: not paired, different data" in across and "unpaired bootstrap" in across

    # The HTML report holds the same scores table and the same paired tests.
    html = (tmp_path / "comparison.html").read_text()
    scores_html, pairs_html = html.split("<h2>Paired tests</h2>")
    assert scores_html.count("<tr>") == len(table) - 2 - 2 + 1  # header + task and overall rows
    assert "<b>Overall</b>" in scores_html
    assert pairs_html.count("<h3>") == 10 and "<h3>model-0 (SAYCam) vs model-1 (SAYCam)</h3>" in pairs_html
    assert "<td>McNemar (exact)</td>" in pairs_html and "Warning</b>: Picture Vocabulary: not paired" in pairs_html
    assert all(verdict in ("no difference detected",) or ", p = " in verdict for verdict in _results(text))


def _results(markdown: str) -> list[str]:
    """The result column of every paired-test row of a comparison."""
    rows = [line for line in markdown.split("## Paired tests")[1].splitlines() if line.startswith("| ")]
    return [row.strip("|").split("|")[-1].strip() for row in rows if not row.startswith("| task |")]


def test_runs_are_named_by_their_model_and_two_runs_of_one_model_by_their_folder(runs, tmp_path):
    # run-0-saycam and run-pv-only both scored model-0 on the SAYCam folder.
    compare_runs([str(runs[0, "saycam"]), str(runs["pv-only"]), str(runs[1, "saycam"])], tmp_path, n_resamples=50)
    header = (tmp_path / "comparison.md").read_text().splitlines()[0]
    assert header.endswith("| model-0 (run-0-saycam) (SAYCam) | model-0 (run-pv-only) (SAYCam) | model-1 (SAYCam) |")


def test_count_by_number_is_read_from_predictions(runs):
    run = read_run(f"mine@Ego4D={runs[0, 'saycam']}")
    assert (run.label, run.domain, run.name) == ("mine", "Ego4D", "mine (Ego4D)")
    entries = [json.loads(line) for line in (runs[0, "saycam"] / "predictions.jsonl").read_text().splitlines()]
    counts = [entry for entry in entries if entry["task"] == "count"]
    assert set(run.count_accuracy) == {int(entry["gold"][0]) for entry in counts}
    for count, accuracy in run.count_accuracy.items():
        scored = [entry["scores"]["acc"] for entry in counts if int(entry["gold"][0]) == count]
        assert (accuracy["score"], accuracy["n"]) == (sum(scored) / len(scored), len(scored))
        assert accuracy["ci_low"] <= accuracy["score"] <= accuracy["ci_high"]


def test_cli_rejects_a_folder_without_a_finished_run(tmp_path, capsys):
    assert main([str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    assert "no summary.json" in capsys.readouterr().err


def _sample(task: str, correct, ids=None) -> TaskSample:
    entries = [
        {
            "id": item_id,
            "scores": {TASKS[task].primary_metric: float(value)},
            "gold": ["A"],
            "unit": f"ep{k // 4}",
            "unit_kind": "recording",
        }
        for k, (item_id, value) in enumerate(zip(ids or [f"item{k}" for k in range(len(correct))], correct))
    ]
    return TaskSample.from_entries(TASKS[task], entries)


def test_paired_tests_detect_a_known_difference_and_not_identical_runs():
    rng = np.random.default_rng(0)
    better = rng.random(160) < 0.8
    worse = better & (rng.random(160) < 0.6)
    config = {"data": "/data/devcv", "split": "test"}
    a = {
        "baby_pv": _sample("picture_vocabulary", better),
        "baby_winoground": _sample("looking_while_listening", better),
    }
    b = {"baby_pv": _sample("picture_vocabulary", worse), "baby_winoground": _sample("looking_while_listening", worse)}
    rows, warnings = compare_pair(config, a, config, b)
    assert not warnings
    assert [row.test for row in rows] == ["McNemar (exact)", "paired bootstrap", "paired bootstrap"]
    assert all(row.p_holm is None or row.p_holm < 0.001 for row in rows)
    assert [row.verdict("A", "B")[: len("A > B, p = ")] for row in rows] == ["A > B, p = "] * 3
    assert rows[0].verdict("A", "B") == f"A > B, p = {rows[0].p_holm:.2g}"
    same, _ = compare_pair(config, a, config, a)
    assert [row.verdict("A", "B") for row in same] == ["no difference detected"] * 3
    # Other items: refused for the paired test, compared unpaired with a warning naming why.
    shifted = {"baby_pv": _sample("picture_vocabulary", worse, [f"other{k}" for k in range(160)])}
    rows, warnings = compare_pair(config, a, config, shifted)
    assert warnings == [
        "Picture Vocabulary: not paired, different items (160 only in the first, 160 only in the second)"
        "; compared unpaired"
    ]
    assert rows[0].test == "unpaired bootstrap"


def test_the_shortcut_audits_solvers_are_baselines_in_the_table(runs, tmp_path):
    audit = [
        {"source": "saycam", "task": "picture_vocabulary", "split": "test", "items": 30, "majority": 0.3},
        {"source": "ego4d", "task": "picture_vocabulary", "split": "test", "items": 10, "majority": 0.5},
        {"source": "saycam", "task": "count", "split": "train", "items": 99, "majority": 0.9},
        {"source": "saycam", "task": "spatialdetails", "split": "test", "items": 5, "majority": 0.4, "pixel_solver": 1},
    ]
    compare_runs([str(runs[0, "saycam"])], tmp_path, audit=audit, n_resamples=100)
    table = (tmp_path / "comparison.md").read_text().split("\n\n")[0].splitlines()
    assert table[0].startswith("| task | metric | chance | human | prior-only (majority) | pixel solver (no prompt) |")
    rows = {row.split("|")[1].strip(): [cell.strip() for cell in row.strip("|").split("|")] for row in table[2:]}
    assert rows["Picture Vocabulary"][4:6] == ["0.350", "n/a"]  # sources pooled by items; the test split only
    assert rows["Object Counting"][4:6] == ["n/a", "n/a"]


def test_runs_scored_on_different_items_are_named_with_their_counts():
    from babyvlm.evaluate_metrics.compare import Run, item_count_differences

    def run(label, counts):
        return Run(label, None, {"tasks": {key: {"n": n} for key, n in counts.items()}}, {})

    runs = [run("a", {"baby_pv": 24, "baby_count": 12}), run("b", {"baby_pv": 24, "baby_count": 6})]
    assert item_count_differences(runs) == [
        "baby_count was scored on different items (a n=12, b n=6): the runs read different data"
    ]
    assert item_count_differences(runs[:1]) == []
