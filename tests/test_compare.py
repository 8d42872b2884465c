"""babyvlm-compare: several runs side by side (tables, plots, domains, count by number)."""

import json

import pytest
from babyvlm.evaluate_metrics.compare import compare_runs, main, read_run
from babyvlm.evaluate_metrics.runner import evaluate_devcv
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

    table = (tmp_path / "comparison.md").read_text().splitlines()
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
    assert pv[4:] == [f"{summary['tasks']['baby_pv']['metrics']['acc']:.3f}" for summary in summaries]
    assert count[4:8] == [f"{summary['tasks']['baby_count']['metrics']['acc']:.3f}" for summary in summaries[:4]]
    assert count[8] == "n/a"  # the PV-only run has no counting score
    assert rows["**Overall**"][4:] == [f"**{summary['overall']:.3f}**" for summary in summaries]

    html = (tmp_path / "comparison.html").read_text()
    assert html.count("<tr>") == len(table) - 2 - 2 + 1  # header + task and overall rows
    assert "<b>Overall</b>" in html


def test_count_by_number_is_read_from_predictions(runs):
    run = read_run(f"mine@Ego4D={runs[0, 'saycam']}")
    assert (run.label, run.domain, run.name) == ("mine", "Ego4D", "mine (Ego4D)")
    entries = [json.loads(line) for line in (runs[0, "saycam"] / "predictions.jsonl").read_text().splitlines()]
    counts = [entry for entry in entries if entry["task"] == "count"]
    assert sum(run.count_accuracy.values()) > 0 or all(entry["scores"]["acc"] == 0 for entry in counts)
    assert set(run.count_accuracy) == {int(entry["gold"][0]) for entry in counts}


def test_cli_rejects_a_folder_without_a_finished_run(tmp_path, capsys):
    assert main([str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    assert "no summary.json" in capsys.readouterr().err
