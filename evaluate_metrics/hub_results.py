"""DevCV scores on the Hub: ``babyvlm eval … --push-to-hub ORG/MODEL``.

The model card's ``model-index`` metadata gets one result per official metric of each task (those of
``results.json``, the leaderboard file; the named extras are left out) and the overall score, as Hub
cards carry evaluation results: task, dataset (id, name, config = the task, split), metric name and
value. The metric's name carries the number of items scored and, when the run reports them, the 95%
interval (``ci_low``/``ci_high`` of ``summary.json``). Results of another dataset or split already on
the card are kept; earlier results of the same dataset, config (task) and split are replaced. The
card's body gets a results table, and the run's report (``summary.json``, ``results.json``,
``devcv_results.json``, ``results.md``, plots) goes to ``devcv/<dataset>/<split>/``, all in one commit.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, metadata_load

from babyvlm import __version__
from babyvlm.command_line import fail
from babyvlm.hub import HubUploadError, read_file, upload

from .report import COUNT_PLOT, LEADERBOARD_RESULTS_FILE, RESULTS_FILE, SCORES_PLOT, markdown_table

DEFAULT_DATASET_ID = "devcv"
REPORT_FILES = ("summary.json", RESULTS_FILE, LEADERBOARD_RESULTS_FILE, "results.md", SCORES_PLOT, COUNT_PLOT)
TASK_TYPE = "visual-question-answering"
OVERALL_CONFIG = "all"
CARD_FILE = "README.md"


def report_folder(dataset_id: str, split: str) -> str:
    """Where a run's report goes in the model repo."""
    return f"devcv/{dataset_id.replace('/', '--')}/{split}"


def _metric_name(task: dict, metric: str) -> str:
    """``acc (n=1132, 95% CI 0.295-0.349)``: the metric, its n, and the interval of the primary metric when given."""
    details = [f"n={task['n']}"]
    if metric == task["primary_metric"] and task.get("ci_low") is not None and task.get("ci_high") is not None:
        details.append(f"95% CI {task['ci_low']:.3f}-{task['ci_high']:.3f}")
    return f"{metric} ({', '.join(details)})"


def eval_results(summary: dict, *, dataset_id: str, dataset_name: str, split: str, source_url: str) -> list[EvalResult]:
    """The ``model-index`` entries of one run: every official metric of every task, then the overall score."""
    common = {
        "task_type": TASK_TYPE,
        "dataset_type": dataset_id,
        "dataset_name": dataset_name,
        "dataset_split": split,
        "source_name": f"babyvlm eval {__version__}",
        "source_url": source_url,
    }
    results = [
        EvalResult(
            **common,
            task_name=task["display_name"],
            dataset_config=task["task"],
            metric_type=metric,
            metric_value=value,
            metric_name=_metric_name(task, metric),
        )
        for task in summary["tasks"].values()
        for metric, value in task["metrics"].items()
    ]
    scored = sum(task["n"] for task in summary["tasks"].values())
    results.append(
        EvalResult(
            **common,
            task_name="DevCV overall",
            dataset_config=OVERALL_CONFIG,
            metric_type="overall",
            metric_value=summary["overall"],
            metric_name=f"overall (mean of the 11 primary metrics, a missing task counts 0; n={scored})",
        )
    )
    return results


def _section(dataset_id: str, split: str, summary: dict, folder: str) -> tuple[re.Pattern, str]:
    """The card's results section of one dataset and split, and the pattern that finds an earlier one."""
    start, end = f"<!-- devcv-results {dataset_id} {split} -->", f"<!-- /devcv-results {dataset_id} {split} -->"
    text = (
        f"{start}\n## DevCV results: `{dataset_id}`, split `{split}`\n\n{markdown_table(summary)}\n"
        f"Written by `babyvlm eval` {__version__}; the full report is in [`{folder}/`]({folder}/).\n{end}"
    )
    return re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL), text


def results_card(
    existing: str | None, summary: dict, *, repo_id: str, dataset_id: str, dataset_name: str, split: str
) -> ModelCard:
    """The model card ``existing`` (None: a new one) with this run's ``model-index`` results and results section."""
    card = ModelCard(existing) if existing else ModelCard(f"---\n{ModelCardData().to_yaml()}\n---\n\n# {repo_id}\n")
    folder = report_folder(dataset_id, split)
    ours = eval_results(
        summary,
        dataset_id=dataset_id,
        dataset_name=dataset_name,
        split=split,
        source_url=f"https://huggingface.co/{repo_id}/blob/main/{folder}/summary.json",
    )
    replaced = {result.unique_identifier for result in ours}  # task type, dataset, config, split, revision
    kept = [old for old in card.data.eval_results or [] if old.unique_identifier not in replaced]
    card.data.eval_results = kept + ours
    card.data.model_name = card.data.model_name or repo_id.split("/")[-1]
    pattern, section = _section(dataset_id, split, summary, folder)
    body = card.text
    body = pattern.sub(lambda _: section, body) if pattern.search(body) else f"{body.rstrip()}\n\n{section}\n"
    return ModelCard(f"---\n{card.data.to_yaml()}\n---\n{body}")


def push_results(
    output_dir: str | Path,
    repo_id: str,
    *,
    data_dir: str | Path,
    split: str,
    dataset_id: str = DEFAULT_DATASET_ID,
    api: HfApi | None = None,
) -> str:
    """Put the scores of the run in ``output_dir`` on the model card of ``repo_id`` and upload its report, as one
    commit to an existing model repo; returns the commit URL (``HubUploadError`` when nothing was uploaded)."""
    output_dir = Path(output_dir)
    summary = json.loads((output_dir / "summary.json").read_text(encoding="utf-8"))
    data_card = Path(data_dir) / CARD_FILE
    dataset_name = (metadata_load(data_card) or {}).get("pretty_name") if data_card.is_file() else None
    card = results_card(
        read_file(repo_id, CARD_FILE, repo_type="model", api=api),
        summary,
        repo_id=repo_id,
        dataset_id=dataset_id,
        dataset_name=dataset_name or "DevCV Toolbox",
        split=split,
    )
    folder = report_folder(dataset_id, split)
    files: dict[str, Path | bytes] = {
        f"{folder}/{name}": output_dir / name for name in REPORT_FILES if (output_dir / name).is_file()
    }
    files[CARD_FILE] = str(card).encode()
    return upload(
        repo_id,
        files,
        repo_type="model",
        create=False,
        commit_message=f"DevCV results on {dataset_id} ({split}) by babyvlm eval {__version__}",
        api=api,
    )


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    """``--push-to-hub ORG/MODEL`` and ``--hub-dataset`` on ``babyvlm eval``'s command line."""
    parser.add_argument(
        "--push-to-hub",
        metavar="ORG/MODEL",
        help="write the scores into this model repo's card (model-index) and upload the run's report",
    )
    parser.add_argument(
        "--hub-dataset",
        default=DEFAULT_DATASET_ID,
        metavar="ORG/NAME",
        help="with --push-to-hub: the Hub id of the dataset evaluated, named in the model-index "
        f"(default: {DEFAULT_DATASET_ID})",
    )


def push_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The ``--push-to-hub`` step of ``babyvlm eval``; returns the exit status (a failure in one line when nothing
    was uploaded)."""
    try:
        url = push_results(
            args.output, args.push_to_hub, data_dir=args.data, split=args.split, dataset_id=args.hub_dataset
        )
    except HubUploadError as error:
        return fail(parser, f"{error}; the report in {args.output} is complete")
    print(f"pushed the results to {url}")
    return 0


def check_push_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.push_to_hub and args.limit is not None:
        parser.error("--push-to-hub publishes whole runs only: drop --limit")
