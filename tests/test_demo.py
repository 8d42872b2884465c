"""The main job's driver, shrunken: every stage runs through the same builders and recipes, a few steps each."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from babyvlm.dataset_builders.toyworld.world import AGE_RANGE_MONTHS
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.runner import summarize
from babyvlm.modeling import BabyLlavaV2ForConditionalGeneration
from babyvlm.processing import BabyLlavaV2Processor
from scipy.stats import binomtest
from transformers import AutoModelForImageTextToText, AutoProcessor

from babyvlm import command_line
from babyvlm.commands import cli, demo
from babyvlm.commands.demo import RECIPE_CONFIGS, SMOKE, Demo, main, significance_summary
from babyvlm.training import pretrain_vision, sft


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    assert cli.main(["demo", "--smoke", "--output", str(output)]) == 0  # `babyvlm demo --smoke`, in this process
    return output


@pytest.mark.slow
def test_every_artefact_is_written(smoke_run, capsys):
    model = AutoModelForImageTextToText.from_pretrained(smoke_run / "model")
    assert type(model) is BabyLlavaV2ForConditionalGeneration
    assert type(AutoProcessor.from_pretrained(smoke_run / "model")) is BabyLlavaV2Processor
    assert "stage `instruct`" in (smoke_run / "model" / "README.md").read_text()
    results = json.loads((smoke_run / "results.json").read_text())["results"]
    summary = json.loads((smoke_run / "summary.json").read_text())
    # the small toy world has test items for a few tasks only; every one of them is scored
    assert len(results) >= 3 and set(results) == {task["harness_key"] for task in summary["tasks"].values()}
    for task in summary["tasks"].values():
        assert 0.0 <= task["p_value"] <= 1.0 and task["n"] > 0 and task["chance"] > 0
    # the stage-2 checkpoint's grounding probes, scored or skipped with the reason (the small world is short of data)
    probes = summary["pretraining_probes"]
    assert set(probes) == {"utterance_frame_matching", "zero_shot_picture_vocabulary"}
    assert all("skipped" in probe or probe["n"] > 0 for probe in probes.values())
    # the same probes along the child's timeline: stage 2's age checkpoints (the few smoke steps reach some), then
    # its final model
    curve = summary["trajectory"]
    names = [row["name"] for row in curve["checkpoints"]]
    assert curve["x"] == "months" and names[-1] == "stage2_pretrain" and len(names) >= 2
    assert all(re.fullmatch(r"age-\d+mo", name) for name in names[:-1])
    for row in curve["checkpoints"]:
        assert set(row["probes"]) == set(SMOKE.trajectory_probes)
        assert all(
            entry["n"] > 0 and entry["ci_low"] <= entry["score"] <= entry["ci_high"] for entry in row["probes"].values()
        )
    for written in ("trajectory.json", "trajectory.csv", *(f"plots/{p}.png" for p in SMOKE.trajectory_probes)):
        assert (smoke_run / "trajectory" / written).is_file(), written
    for folder in (
        "toyworld",
        "corpora",
        "devcv",
        "stage0_lm",
        "stage0_vision",
        "stage1_align",
        "stage2_pretrain",
        "trajectory",
        "eval",
    ):
        assert (smoke_run / folder).is_dir(), folder


@pytest.mark.slow
def test_second_run_reuses_finished_stages(smoke_run, capsys):
    before = (smoke_run / "model" / "model.safetensors").stat().st_mtime_ns
    Demo(smoke_run, SMOKE).run()
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, reused") == 11
    assert (smoke_run / "model" / "model.safetensors").stat().st_mtime_ns == before


def test_an_edited_recipe_yaml_invalidates_its_stage(tmp_path, monkeypatch):
    recipes = tmp_path / "tiny"
    shutil.copytree(demo.TINY, recipes)
    monkeypatch.setattr(demo, "TINY", recipes)
    before = {stage.name: stage.settings for stage in Demo(tmp_path, SMOKE).stages()}
    with (recipes / "stage2_pretrain.yaml").open("a") as config:
        config.write("learning_rate: 1.0e-3\n")
    after = {stage.name: stage.settings for stage in Demo(tmp_path, SMOKE).stages()}
    assert [name for name in before if before[name] != after[name]] == ["stage2_pretrain"]


def test_another_stage3_task_list_reruns_only_stage3_and_evaluation(tmp_path):
    before = {stage.name: stage.settings for stage in Demo(tmp_path, SMOKE).stages()}
    other = dataclasses.replace(SMOKE, instruct_tasks=("count",))
    after = {stage.name: stage.settings for stage in Demo(tmp_path, other).stages()}
    assert [name for name in before if before[name] != after[name]] == ["model"]


def test_stages_0_vision_to_2_read_the_childs_timeline_and_stage_2_checkpoints_ages_of_the_world(tmp_path, monkeypatch):
    parsed = {}
    for recipe in (sft, pretrain_vision):
        monkeypatch.setattr(recipe, "train", lambda arguments, *_: arguments)
    for stage in RECIPE_CONFIGS:
        parsed[stage] = Demo(tmp_path, SMOKE).train(stage, *(["--dataset_name", "frames"] if stage == "vision" else []))
    assert {stage: arguments.curriculum for stage, arguments in parsed.items()} == {
        "lm": "shuffled",  # packed text has no order
        "vision": "chronological",
        "align": "chronological",
        "pretrain": "chronological",
        "instruct": "shuffled",
    }
    ages = parsed["pretrain"].save_at_age_months
    assert len(ages) >= 4 and all(AGE_RANGE_MONTHS[0] < age < AGE_RANGE_MONTHS[1] for age in ages)


def test_the_trajectory_curve_is_printed_beside_the_stage_2_probes(tmp_path, capsys):
    entry = {"score": 0.3, "ci_low": 0.2, "ci_high": 0.4, "n": 150, "p_value": 0.2, "chance": 0.25}
    rows = [("age-9mo", 9.0), ("age-15mo", 15.0), ("stage2_pretrain", 31.2)]
    curve = {
        "x": "months",
        "checkpoints": [{"name": name, "x": x, "probes": {"zero_shot_picture_vocabulary": entry}} for name, x in rows],
        "acquisition": {"zero_shot_picture_vocabulary": None},
    }
    summary = significance_summary({"overall": None, "tasks": {}})
    demo.print_summary(tmp_path, {**summary, "trajectory": curve})
    printed = capsys.readouterr().out
    assert "child's timeline" in printed and "zero_shot_picture_vocabulary" in printed
    lines = [line for line in printed.splitlines() if line.startswith(("age-", "stage2_pretrain"))]
    assert len(lines) == 3 and all("0.300 [0.200, 0.400] n=150" in line for line in lines)
    assert lines[-1].split()[:2] == ["stage2_pretrain", "31.2"]


def runner_entries(task: str, scores: list[float], rounds: int = 1) -> list[dict]:
    """Prediction entries of `task` with these primary scores, as the runner writes them."""
    metric = TASKS[task].primary_metric
    dialogue = {"labels_fallback": False} if rounds > 1 else {}
    return [
        {"id": f"{task}_{k}", "scores": {metric: score}, "gold": ["A"] * rounds, "unparsable": 0, "extra_scores": {}}
        | dialogue
        for k, score in enumerate(scores)
    ]


def test_significance_summary_is_a_one_sided_binomial_test():
    # 50 of 100 Picture Vocabulary items right; Memory's 20 items (15 rounds) with 25 of their 100 objects
    runner_summary = summarize(
        {
            TASKS["picture_vocabulary"]: runner_entries("picture_vocabulary", [1.0, 0.0] * 50),
            TASKS["memory"]: runner_entries("memory", [0.2] * 15 + [0.4] * 5, rounds=15),
        },
        n_resamples=200,
    )
    summary = significance_summary(runner_summary)
    pv, memory = summary["tasks"]["picture_vocabulary"], summary["tasks"]["memory"]
    assert (pv["successes"], pv["trials"]) == (50, 100) and pv["p_value"] < 1e-6 and pv["above_chance"]
    assert pv["p_value"] == pytest.approx(binomtest(50, 100, 0.25, alternative="greater").pvalue)
    assert memory["trials"] == 100 and 0.4 < memory["p_value"] < 0.6 and not memory["above_chance"]
    assert memory["p_value"] == pytest.approx(binomtest(25, 100, 0.25, alternative="greater").pvalue)
    assert summary["tasks_above_chance"] == ["picture_vocabulary"] and summary["partial"] is None


def test_a_partial_evaluation_is_labelled_in_the_printed_table(tmp_path, capsys):
    scope = {"partial": True, "items_evaluated": 2, "items_available": 150, "limit": 2}
    task = {
        "task": "count",
        "primary_metric": "acc",
        "metrics": {"acc": 0.5},
        "chance": 1 / 12,
        "n": 2,
        "p_value": 0.16,
    }
    summary = significance_summary({"overall": 0.1, "tasks": {"baby_count": task}, "scope": scope})
    demo.print_summary(tmp_path, summary)
    assert "partial: 2 of 150 items (--limit 2): not comparable with full runs" in capsys.readouterr().out


def test_a_stage_run_again_starts_without_its_earlier_checkpoints(tmp_path, monkeypatch):
    # The recipes keep checkpoints in `<folder>-checkpoints` beside a stage's folder and resume from them: a stage
    # that runs again (changed settings, --force) must not resume the earlier run.
    seen = []

    def train():
        seen.append(sorted(path.name for path in tmp_path.iterdir()))
        (tmp_path / "stage0_vision").mkdir()
        (tmp_path / "summary.json").write_text("{}")

    monkeypatch.setattr(Demo, "stages", lambda self: [demo.Stage("stage0_vision", "vision", train, {})])
    for folder in ("stage0_vision", "stage0_vision-checkpoints/checkpoints/checkpoint_0"):
        (tmp_path / folder).mkdir(parents=True)
    Demo(tmp_path, SMOKE).run(force=True)
    assert seen == [[".stages"]]


def openmp_spin_counts(stderr: str) -> list[str]:
    """GOMP_SPINCOUNT of every OpenMP runtime a process loaded, from OMP_DISPLAY_ENV=VERBOSE's report: 0 when
    OMP_WAIT_POLICY is PASSIVE (the policy line itself reads PASSIVE for libgomp's default too)."""
    return re.findall(r"GOMP_SPINCOUNT = '(\d+)'", stderr)


@pytest.mark.slow
def test_the_command_runs_with_a_passive_openmp_wait_policy():
    environment = {name: value for name, value in os.environ.items() if name != "OMP_WAIT_POLICY"}
    environment["OMP_DISPLAY_ENV"] = "VERBOSE"  # every OpenMP runtime reports its settings when it loads
    command = [sys.executable, "-c", "from babyvlm.commands.demo import main; main()", "--help"]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=True)
    spin_counts = openmp_spin_counts(result.stderr)
    # the first process loads OpenMP with the default policy (it spins), the restarted one with PASSIVE only
    assert spin_counts[0] != "0" and spin_counts[-1] == "0", spin_counts
    assert result.stdout.count("usage: ") == 1  # the arguments reached the restarted command, once


def test_a_wait_policy_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(os, "execv", lambda *arguments: pytest.fail(f"restarted: {arguments}"))
    command_line.restart_with_passive_omp_wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize(
    "started",
    [
        ["babyvlm", "demo", "--seed", "1"],
        ["babyvlm-demo", "--seed", "1"],
        ["-m", "babyvlm.commands.demo", "--seed", "1"],
    ],
    ids=["babyvlm demo", "babyvlm-demo", "python -m"],
)
def test_the_command_restarts_itself_with_passive_and_its_arguments(monkeypatch, started):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python3.11", *started])
    restarts = []
    monkeypatch.setattr(os, "execv", lambda *arguments: restarts.append(arguments))
    command_line.restart_with_passive_omp_wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert restarts == [(sys.executable, [sys.executable, *started])]  # the same command line, once more


def test_babyvlm_demo_restarts_before_the_demo_runs(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(sys, "argv", ["babyvlm", "demo", "--help"])

    class Restarted(Exception):
        pass

    def execv(*arguments):
        raise Restarted

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(Restarted):
        cli.main()


def test_main_with_arguments_runs_in_this_process(monkeypatch):
    # tests and notebooks call main([...]): no restart, whatever the environment holds
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(os, "execv", lambda *arguments: pytest.fail(f"restarted: {arguments}"))
    with pytest.raises(SystemExit):
        main(["--help"])
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    assert "OMP_WAIT_POLICY" not in os.environ
