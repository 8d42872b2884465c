"""Leaderboard submissions: a valid submission.json and a self-contained model.py that stock lmms-eval runs,
without babyvlm importable, over the plugin's DevCV tasks with the organisers' arguments, scoring as babyvlm eval."""

import ast
import json
import subprocess
import sys
import sysconfig

import pytest

lmms_eval = pytest.importorskip("lmms_eval")

from babyvlm.evaluate_metrics.lmms_eval_plugin.task_folder import write_task_folder  # noqa: E402
from babyvlm.evaluate_metrics.runner import evaluate_devcv  # noqa: E402
from babyvlm.evaluate_metrics.submission import SubmissionError, main, write_submission  # noqa: E402

from babyvlm.testing.devcv import assert_lmms_eval_scores_equal, synthetic_items, write_devcv_folder  # noqa: E402

# Up to 4 items per task, so the organisers' `--limit 4` covers every item (LWL: 2 items = 4 docs).
ITEMS = {"picture_vocabulary": 4, "count": 4, "memory": 2, "looking_while_listening": 2}
HARNESS_KEYS = ["baby_pv", "baby_count", "baby_memory", "baby_winoground"]
MAX_NEW_TOKENS = 3
NAME = "Tiny Baby-LLaVA v2"
REGISTERED = "tiny_baby_llava_v2"

# The organisers' run (runner/eval_runner.py): their model.py copied to lmms_eval/models/<registered>.py and
# listed in AVAILABLE_MODELS, here through lmms-eval's plugin-package hook, in a process without babyvlm: no
# site processing (so no editable-install finder), the venv's site-packages put back by hand.
ORGANISERS_RUN = r"""
import importlib.util, os, sys
site_packages, toolbox, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path += [site_packages, toolbox]
if importlib.util.find_spec("babyvlm") is not None:
    raise SystemExit("babyvlm is importable: the test environment is wrong")
os.environ["LMMS_EVAL_PLUGINS"] = "devcv_toolbox"
sys.argv = ["lmms_eval", *argv]
from lmms_eval.__main__ import cli_evaluate
cli_evaluate()
if any(name == "babyvlm" or name.startswith("babyvlm.") for name in sys.modules):
    raise SystemExit("babyvlm was imported")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("submission")
    rows = {task: synthetic_items(task, count) for task, count in ITEMS.items()}
    data = write_devcv_folder(root / "devcv", rows)
    write_task_folder(data, root / "tasks", max_new_tokens=MAX_NEW_TOKENS, max_new_tokens_per_round=MAX_NEW_TOKENS)
    submission = write_submission(str(tiny_model_dir), NAME, root / "submissions" / "tiny")
    return root, data, submission, rows


@pytest.fixture(scope="module")
def organisers_output(setup, tiny_model_dir):
    root, _, submission, _ = setup
    toolbox = root / "toolbox"
    models = toolbox / "devcv_toolbox" / "models"
    models.mkdir(parents=True)
    (toolbox / "devcv_toolbox" / "tasks").mkdir()  # lmms-eval's plugin hook also reads the package's tasks
    for package in ("", "tasks"):
        (toolbox / "devcv_toolbox" / package / "__init__.py").write_text("")
    (models / "__init__.py").write_text(f'AVAILABLE_MODELS = {{"{REGISTERED}": "DevCVSubmission"}}\n')
    (models / f"{REGISTERED}.py").write_text((submission / "model.py").read_text())
    output = root / "lmms-out"
    argv = ["--model", REGISTERED, "--model_args", f"pretrained={tiny_model_dir},conv_template=baby_v1"]
    argv += ["--tasks", "devcv", "--include_path", str(root / "tasks"), "--batch_size", "16", "--limit", "4"]
    argv += ["--output_path", str(output), "--trust_remote_code", "--log_samples", "--verbosity", "WARNING"]
    site_packages = sysconfig.get_paths()["purelib"]
    command = [sys.executable, "-S", "-c", ORGANISERS_RUN, site_packages, str(toolbox), *argv]
    run = subprocess.run(command, cwd=toolbox, capture_output=True, text=True, timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert "Error during evaluation" not in log, log
    return output


@pytest.fixture(scope="module")
def runner_output(setup, tiny_model_dir):
    root, data, _, _ = setup
    output = root / "runner-out"
    limits = {"max_new_tokens": MAX_NEW_TOKENS, "max_new_tokens_per_round": MAX_NEW_TOKENS}
    evaluate_devcv(tiny_model_dir, data, output, batch_size=3, progress=False, **limits)
    return output


@pytest.mark.slow
def test_stock_lmms_eval_scores_the_submission_like_babyvlm_eval(organisers_output, runner_output, setup):
    _, _, _, rows = setup
    assert_lmms_eval_scores_equal(organisers_output, runner_output, HARNESS_KEYS)

    entries = {}
    for line in (runner_output / "predictions.jsonl").read_text().splitlines():
        entry = json.loads(line)
        entries[entry["task"], entry["id"]] = entry["output"]
    for task, key in (("picture_vocabulary", "baby_pv"), ("count", "baby_count"), ("memory", "baby_memory")):
        samples = next(organisers_output.rglob(f"*_samples_{key}.jsonl")).read_text().splitlines()
        by_doc = sorted((json.loads(line) for line in samples), key=lambda sample: sample["doc_id"])
        answers = [sample["filtered_resps"] for sample in by_doc]
        if task == "memory":  # the reference wrapper's answer: one JSON-encoded list per dialogue
            answers = [json.loads(answer[0] if isinstance(answer, list) else answer) for answer in answers]
        assert answers == [entries[task, row["id"]] for row in rows[task]], task


@pytest.mark.slow
def test_the_organisers_results_file_records_what_the_model_args_resolved_to(organisers_output, tiny_model_dir):
    from transformers import AutoTokenizer

    (results_file,) = organisers_output.rglob("*_results.json")
    config = json.loads(results_file.read_text())["config"]
    assert config["model_args"] == f"pretrained={tiny_model_dir},conv_template=baby_v1"  # as given
    resolved = config["resolved_model_args"]
    # `dtype=auto` on a CPU: float32; prompts cut at the saved tokenizer's model_max_length.
    assert resolved["dtype"] == "float32" and resolved["truncation"] == "model_max_length"
    assert resolved["context_limit"] == AutoTokenizer.from_pretrained(tiny_model_dir).model_max_length == 8192
    assert resolved["batch_size"] == 16 and resolved["device"] == "cpu"
    # lmms-eval's stop strings cut single-turn answers; Memory's rounds are stripped only.
    assert resolved["stop_strings"] == {"baby_count": ["\n\n"], "baby_memory": [], "baby_pv": ["\n\n"]}
    assert config["truncated_prompts"] == 0


def leaderboard_problems(folder) -> list[str]:
    """The leaderboard's `Validate submission` workflow and submissions/README.md schema, re-stated."""
    problems = []
    try:
        submission = json.loads((folder / "submission.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        return [f"not valid JSON ({error})"]
    for key in ("model_name", "checkpoint"):
        if not submission.get(key):
            problems.append(f"missing required field '{key}'")
    if "REPLACE" in str(submission.get("checkpoint", "")):
        problems.append("checkpoint still has the placeholder value")
    if not (submission.get("registered_model") or (folder / "model.py").is_file()):
        problems.append("provide a model.py in the folder or set 'registered_model'")
    expected = {"model_name", "checkpoint", "registered_model", "conv_template", "hf_model_url", "metadata"}
    if set(submission) != expected:
        problems.append(f"fields {sorted(submission)} are not the schema's {sorted(expected)}")
    metadata_fields = {"model_type", "vision_encoder", "language_model", "training_data", "num_parameters"}
    metadata_fields |= {"main_contributions", "model_description"}
    if set(submission.get("metadata", {})) != metadata_fields:
        problems.append("metadata does not have the schema's fields")
    return problems


def test_submission_json_is_valid_and_model_py_self_contained(setup, tiny_model_dir):
    _, _, submission, _ = setup
    assert leaderboard_problems(submission) == []
    written = json.loads((submission / "submission.json").read_text())
    assert written["model_name"] == NAME and written["registered_model"] == REGISTERED
    assert written["conv_template"] == "baby_v1"
    assert written["metadata"]["num_parameters"] > 0

    source = (submission / "model.py").read_text()
    assert f'REGISTERED_NAME = "{REGISTERED}"' in source
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names)
    assert third_party <= {"lmms_eval", "transformers", "torch", "PIL", "accelerate"}, third_party


def test_cli_writes_metadata_and_refuses_bad_input(tmp_path, tiny_model_dir, capsys):
    output = tmp_path / "submissions" / "mine"
    argv = ["--model", "someone/baby-model", "--name", "Mine", "--output", str(output)]
    main(argv + ["--training-data", "SAYCam", "--num-parameters", "12345"])
    written = json.loads((output / "submission.json").read_text())
    assert written["checkpoint"] == "someone/baby-model"
    assert written["hf_model_url"] == "https://huggingface.co/someone/baby-model"
    assert written["metadata"]["training_data"] == "SAYCam" and written["metadata"]["num_parameters"] == 12345
    assert leaderboard_problems(output) == []

    assert main(argv) == 1
    assert "exists" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "empty"
    not_a_checkpoint.mkdir()
    with pytest.raises(SubmissionError, match="no config.json"):
        write_submission(str(not_a_checkpoint), "x", tmp_path / "x")
    (not_a_checkpoint / "config.json").write_text(json.dumps({"model_type": "not_in_transformers"}))
    with pytest.raises(SubmissionError, match="cannot load it"):
        write_submission(str(not_a_checkpoint), "x", tmp_path / "x")
    with pytest.raises(SubmissionError, match="usable model name"):
        write_submission("someone/baby-model", "1 !", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert [path.name for path in (tmp_path / "submissions").iterdir()] == ["mine"]  # no staging folder left


def test_empty_challenge_metadata_is_named_and_bad_values_are_refused(tmp_path, capsys):
    argv = ["--model", "someone/baby-model", "--name", "Mine"]
    main(argv + ["--output", str(tmp_path / "bare")])
    warning = capsys.readouterr().err
    for field in ("model_type", "vision_encoder", "language_model", "training_data", "model_description"):
        assert field in warning
    assert "--vision-encoder" in warning
    complete = ["--model-type", "LLaVA-style", "--vision-encoder", "ViT-S/16", "--language-model", "GPT-2"]
    complete += ["--training-data", "SAYCam", "--num-parameters", "5", "--model-description", "tiny"]
    main(argv + ["--output", str(tmp_path / "complete"), *complete])
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(argv + ["--output", str(tmp_path / "typed"), "--model-type", "Transformer"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SubmissionError, match="positive whole number"):
        write_submission("someone/baby-model", "x", tmp_path / "x", metadata={"num_parameters": 0})


# --- babyvlm submit --check ----------------------------------------------------------------------------------


def _listing(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_check_names_what_the_leaderboard_would_refuse_and_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "mine"
    main(["--model", "someone/baby-model", "--name", "Mine", "--output", str(folder), "--num-parameters", "5"])
    capsys.readouterr()
    before = _listing(folder)
    assert main(["--check", str(folder)]) == 0
    printed = capsys.readouterr()
    assert "pass the leaderboard's validation" in printed.out and "model_type" in printed.err  # empty form fields
    assert _listing(folder) == before

    submission = json.loads((folder / "submission.json").read_text())
    broken = {
        "placeholder": ({**submission, "checkpoint": "REPLACE_ME"}, "placeholder value"),
        "form choice": (
            {**submission, "metadata": {**submission["metadata"], "model_type": "Transformer"}},
            "not one of the form's choices",
        ),
        "schema": ({key: value for key, value in submission.items() if key != "hf_model_url"}, "hf_model_url"),
        "registration": ({**submission, "registered_model": "other_name"}, "not registered_model 'other_name'"),
    }
    for name, (content, message) in broken.items():
        (folder / "submission.json").write_text(json.dumps(content))
        assert main(["--check", str(folder)]) == 1, name
        assert message in capsys.readouterr().err, name
    (folder / "submission.json").write_text(json.dumps(submission))
    (folder / "model.py").write_text(before["model.py"].decode().replace("class DevCVSubmission", "class Mine"))
    assert main(["--check", str(folder)]) == 1
    assert "defines no class DevCVSubmission" in capsys.readouterr().err
    (folder / "submission.json").write_text("{")
    assert main(["--check", str(folder)]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_check_compares_every_metric_and_flags_a_difference(tmp_path):
    from babyvlm.evaluate_metrics.submission.check import compare_scores

    (tmp_path / "lmms" / "model").mkdir(parents=True)
    (tmp_path / "runner").mkdir()
    lmms = {"results": {"baby_pv": {"acc,none": 0.5}, "baby_count": {"acc,none": 0.25}}}
    (tmp_path / "lmms" / "model" / "x_results.json").write_text(json.dumps(lmms))
    runner = {"results": {"baby_pv": {"acc": 0.5}, "baby_count": {"acc": 0.5}, "baby_memory": {"acc_learning": 1.0}}}
    (tmp_path / "runner" / "results.json").write_text(json.dumps(runner))
    verdicts = {(c.task, c.metric): c.agrees for c in compare_scores(tmp_path / "lmms", tmp_path / "runner")}
    assert verdicts == {("baby_pv", "acc"): True, ("baby_count", "acc"): False, ("baby_memory", "acc_learning"): False}


@pytest.mark.slow
def test_check_runs_model_py_under_stock_lmms_eval_and_its_scores_equal_babyvlm_evals(setup, tiny_model_dir, capsys):
    _, data, submission, _ = setup
    before = _listing(submission)
    argv = ["--check", str(submission), "--data", str(data), "--limit", "2", "--max-new-tokens", "3"]
    assert main(argv + ["--tasks", "picture_vocabulary,memory,looking_while_listening"]) == 0
    printed = capsys.readouterr().out
    assert "all 7 scores agree" in printed and "baby_winoground      group_score" in printed
    assert _listing(submission) == before
    (submission / "model.py").write_text(before["model.py"].decode().replace("def generate_until(", "def _gone("))
    try:
        assert main(argv + ["--tasks", "count"]) == 1
        assert "model.py under stock lmms-eval failed" in capsys.readouterr().err
    finally:
        (submission / "model.py").write_bytes(before["model.py"])
