"""``babyvlm submit --check FOLDER``: a submission folder checked as the leaderboard checks it, and its ``model.py``
run as the organisers run it, before it is submitted. Nothing is written into the folder.

1. **The leaderboard's rules** (its ``Validate submission`` workflow and the schema of its
   ``submissions/README.md``): ``submission.json`` is a JSON object with the schema's fields, ``model_name``
   and ``checkpoint`` set and the checkpoint no placeholder, a ``model.py`` (or a ``registered_model``), the
   metadata values the submission form accepts (:func:`problems`). The form's fields that a row needs to count
   toward the BabyVLM challenge are named where empty (:func:`warnings`).
2. **``model.py`` under stock lmms-eval** (``--data DEVCV_DIR``): the organisers' runner copies ``model.py`` into
   their lmms-eval's ``models/`` and lists it in ``AVAILABLE_MODELS`` as ``DevCVSubmission``; here the same
   registration goes through lmms-eval's plugin-package hook, in a fresh Python process in which babyvlm cannot
   be imported, with the organisers' arguments (``pretrained=CHECKPOINT,conv_template=…``, ``--batch_size 16``,
   ``--trust_remote_code``), over the first ``--limit`` items of each task of the folder. Then ``babyvlm eval``
   scores the same items and the two sets of scores are compared metric by metric (:func:`run_model_py`,
   :func:`compare_scores`). Both use the same generation limits (short ones by default: this checks that the
   file runs and scores as babyvlm does, it is not a score).
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..harness import QUICK_LIMIT, QUICK_MAX_NEW_TOKENS
from . import CHALLENGE_FIELDS, METADATA_FIELDS, SubmissionError, check_metadata, check_submission

SUBMISSION_FIELDS = ("model_name", "checkpoint", "registered_model", "conv_template", "hf_model_url", "metadata")
# The class the organisers' runner lists in AVAILABLE_MODELS for every submission (runner/eval_runner.py).
ORGANISERS_CLASS = "DevCVSubmission"
ORGANISERS_BATCH_SIZE = 16
PLUGIN_PACKAGE = "devcv_toolbox"
# The organisers' lmms-eval run in a process where babyvlm cannot be imported, whatever is installed.
ORGANISERS_RUN = r"""
import importlib.abc, os, sys

class HideBabyvlm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "babyvlm" or name.startswith("babyvlm."):
            raise ModuleNotFoundError(f"No module named {name!r} (the organisers' environment has no babyvlm)")
        return None

sys.meta_path.insert(0, HideBabyvlm())
toolbox, argv = sys.argv[1], sys.argv[2:]
sys.path.insert(0, toolbox)
os.environ["LMMS_EVAL_PLUGINS"] = "devcv_toolbox"
sys.argv = ["lmms_eval", *argv]
from lmms_eval.__main__ import cli_evaluate
cli_evaluate()
"""


def _read(folder: Path) -> tuple[dict | None, list[str]]:
    path = folder / "submission.json"
    if not path.is_file():
        return None, [f"{path}: no submission.json"]
    try:
        submission = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, [f"{path}: not valid JSON ({error})"]
    if not isinstance(submission, dict):
        return None, [f"{path}: a JSON {type(submission).__name__}, not an object"]
    return submission, []


def _model_py_problems(path: Path, registered: str) -> list[str]:
    """What keeps the organisers' runner from loading ``model.py`` as the submission's model."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (UnicodeDecodeError, SyntaxError) as error:
        return [f"{path}: not valid Python ({error})"]
    classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    problems = []
    if ORGANISERS_CLASS not in classes:
        problems.append(
            f"{path}: defines no class {ORGANISERS_CLASS}, the class the organisers' runner registers "
            f"(AVAILABLE_MODELS[{registered!r}] = {ORGANISERS_CLASS!r})"
        )
    registered_names = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "register_model"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    names = {
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(getattr(target, "id", None) == "REGISTERED_NAME" for target in node.targets)
        and isinstance(node.value, ast.Constant)
    }
    if registered and (registered_names or names) and registered not in registered_names | names:
        problems.append(f"{path}: registers {sorted(registered_names | names)}, not registered_model {registered!r}")
    return problems


def problems(folder: str | Path) -> list[str]:
    """What the leaderboard's validation would refuse in the submission folder (empty when it is valid)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: no such submission folder"]
    submission, found = _read(folder)
    if submission is None:
        return found
    found += check_submission(submission, folder)
    missing = [key for key in SUBMISSION_FIELDS if key not in submission]
    unknown = sorted(set(submission) - set(SUBMISSION_FIELDS))
    if missing:
        found.append(f"submission.json lacks the schema's field(s) {', '.join(missing)}")
    if unknown:
        found.append(f"submission.json has field(s) {', '.join(unknown)} the schema does not")
    metadata = submission.get("metadata", {})
    if not isinstance(metadata, dict):
        found.append(f"metadata is a JSON {type(metadata).__name__}, not an object")
    else:
        absent = [key for key in METADATA_FIELDS if key not in metadata]
        if absent:
            found.append(f"metadata lacks the schema's field(s) {', '.join(absent)}")
        try:
            check_metadata({key: value for key, value in metadata.items() if value != ""})
        except SubmissionError as error:
            found.append(str(error))
    if (folder / "model.py").is_file():
        found += _model_py_problems(folder / "model.py", str(submission.get("registered_model") or ""))
    return found


def warnings(folder: str | Path) -> list[str]:
    """The submission form's fields a row needs to count toward the BabyVLM challenge that are empty."""
    submission, _ = _read(Path(folder))
    metadata = (submission or {}).get("metadata")
    if not isinstance(metadata, dict):
        return []
    empty = [field for field in CHALLENGE_FIELDS if metadata.get(field) in ("", None)]
    return [f"empty: {', '.join(empty)} (the row will not count toward the BabyVLM challenge)"] if empty else []


def _toolbox(root: Path, registered: str, model_py: Path) -> Path:
    """A plugin package that registers ``model.py`` as the organisers' runner does."""
    package = root / PLUGIN_PACKAGE
    (package / "models").mkdir(parents=True)
    (package / "tasks").mkdir()  # lmms-eval's plugin hook also reads the package's tasks
    for init in ("", "tasks"):
        (package / init / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text(f"AVAILABLE_MODELS = {{{registered!r}: {ORGANISERS_CLASS!r}}}\n")
    (package / "models" / f"{registered}.py").write_text(model_py.read_text(encoding="utf-8"))
    return root


def run_model_py(
    folder: Path, checkpoint: str, task_dir: Path, output: Path, work: Path, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run the folder's ``model.py`` under stock lmms-eval on the tasks of ``task_dir`` (group ``devcv``), with the
    organisers' arguments, in a process where babyvlm cannot be imported."""
    submission = json.loads((folder / "submission.json").read_text(encoding="utf-8"))
    registered = submission["registered_model"]
    toolbox = _toolbox(work / "toolbox", registered, folder / "model.py")
    model_args = f"pretrained={checkpoint},conv_template={submission.get('conv_template') or 'baby_v1'}"
    argv = ["--model", registered, "--model_args", model_args, "--tasks", "devcv", "--include_path", str(task_dir)]
    argv += ["--batch_size", str(ORGANISERS_BATCH_SIZE), "--output_path", str(output), "--trust_remote_code"]
    argv += ["--verbosity", "WARNING"]
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    command = [sys.executable, "-c", ORGANISERS_RUN, str(toolbox), *argv]
    return subprocess.run(command, cwd=toolbox, env=environment, capture_output=True, text=True, timeout=timeout)


def _error_line(log: str) -> str:
    """The line of an lmms-eval log that says what failed (the last one naming an error, else the last one)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["(no output)"])[-1]


@dataclass
class ScoreComparison:
    task: str
    metric: str
    model_py: float | None
    babyvlm: float

    @property
    def agrees(self) -> bool:
        return self.model_py is not None and math.isclose(self.model_py, self.babyvlm, abs_tol=1e-9)


def compare_scores(lmms_output: Path, runner_output: Path) -> list[ScoreComparison]:
    """Every metric of ``babyvlm eval``'s ``results.json`` beside the same metric of the lmms-eval run."""
    results_files = sorted(Path(lmms_output).rglob("*_results.json"))
    if not results_files:
        raise SubmissionError(f"lmms-eval wrote no *_results.json under {lmms_output}")
    lmms_results = json.loads(results_files[-1].read_text())["results"]
    runner_results = json.loads((Path(runner_output) / "results.json").read_text())["results"]
    return [
        ScoreComparison(task, metric, lmms_results.get(task, {}).get(f"{metric},none"), value)
        for task, metrics in runner_results.items()
        for metric, value in metrics.items()
    ]


def check_run(
    folder: str | Path,
    data: str | Path,
    *,
    checkpoint: str | None = None,
    tasks: list[str] | None = None,
    split: str = "test",
    limit: int = QUICK_LIMIT,
    max_new_tokens: int = QUICK_MAX_NEW_TOKENS,
    timeout: float | None = None,
) -> list[ScoreComparison]:
    """Run ``model.py`` as the organisers do and ``babyvlm eval`` on the first ``limit`` items of each task of the
    DevCV folder ``data``, with the same generation limits, and compare their scores (in a temporary folder).
    ``checkpoint``: what to load instead of submission.json's (a local copy of it)."""
    from ..lmms_eval_plugin.task_folder import write_task_folder
    from ..runner import evaluate_devcv

    folder = Path(folder)
    found = problems(folder)
    if found:
        raise SubmissionError(f"{folder}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    checkpoint = checkpoint or json.loads((folder / "submission.json").read_text())["checkpoint"]
    limits = {"max_new_tokens": max_new_tokens, "max_new_tokens_per_round": max_new_tokens}
    with tempfile.TemporaryDirectory(prefix="babyvlm-submit-check-") as scratch:
        work = Path(scratch)
        write_task_folder(data, work / "tasks", split=split, tasks=tasks, limit=limit, **limits)
        run = run_model_py(folder, checkpoint, work / "tasks", work / "lmms-eval", work, timeout)
        # lmms-eval 0.7.3 logs the error of a failed run (a model it cannot build, say) and exits with status 0.
        if run.returncode != 0 or not any((work / "lmms-eval").rglob("*_results.json")):
            raise SubmissionError(
                f"model.py under stock lmms-eval failed (exit status {run.returncode}, no results): "
                f"{_error_line(run.stdout + run.stderr)}"
            )
        evaluate_devcv(
            checkpoint, data, work / "babyvlm-eval", tasks=tasks, split=split, limit=limit, progress=False, **limits
        )
        return compare_scores(work / "lmms-eval", work / "babyvlm-eval")
