"""Outputs of an evaluation run: the leaderboard results files, a Markdown table and PNG plots.

Every file is written to a temporary name in the output folder and then renamed (:mod:`babyvlm.staging`),
so a file that exists is complete.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib

from babyvlm.staging import staged_file
from babyvlm.staging import write_text as write_text_atomic  # noqa: F401  (the name the runner and compare use)

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402

from .devcv.parsing import parse_number  # noqa: E402
from .devcv.uncertainty import N_RESAMPLES, bootstrap_mean  # noqa: E402
from .units import ITEM_UNIT, clustering  # noqa: E402

SCORES_PLOT = "scores_vs_chance.png"
COUNT_PLOT = "count_accuracy_by_true_count.png"
RESULTS_FILE = "results.json"
# The leaderboard collates every `**/*_results.json` under the folder it is given (BabyVLM-Leaderboard-2026
# submission_template/collate_results.py `collate`, runner/eval_runner.py `collate_logs`), the names lmms-eval
# gives its result files; `results.json` alone does not match that pattern.
LEADERBOARD_RESULTS_FILE = "devcv_results.json"


def write_atomic(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and move the result onto ``path`` only once it is complete."""
    with staged_file(path) as temporary:
        write(temporary)


def write_results_files(output_dir: Path, results: dict[str, dict[str, float]]) -> None:
    """The official metrics per harness key as ``{"results": {"baby_pv": {"acc": ...}, ...}}``, in
    ``results.json`` and in the file the leaderboard's collation finds."""
    text = json.dumps({"results": results}, indent=2) + "\n"
    for name in (RESULTS_FILE, LEADERBOARD_RESULTS_FILE):
        write_text_atomic(output_dir / name, text)


def interval(statistics: dict) -> str:
    """``[low, high]`` of a score's 95% interval ("" where the summary has none)."""
    return f"[{statistics['ci_low']:.3f}, {statistics['ci_high']:.3f}]" if "ci_low" in statistics else ""


def p_value(value: float | None) -> str:
    return "" if value is None else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def task_n(task: dict) -> str:
    """A task's n: items, with Memory's learned objects, and the clusters when items share a unit."""
    n = f"{task['n']}" + (f" ({task['objects']} objects)" if "objects" in task else "")
    if task.get("cluster_unit", "item") != "item":
        n += f", {task['n_clusters']} {task['cluster_unit']}s"
    return n


def partial_note(summary: dict) -> str | None:
    """ "partial: N of M items" when the run did not evaluate every item of its tasks."""
    scope = summary.get("scope") or {}
    if not scope.get("partial"):
        return None
    limit = f" (--limit {scope['limit']})" if scope.get("limit") else ""
    return f"partial: {scope['items_evaluated']} of {scope['items_available']} items{limit}"


def markdown_table(summary: dict) -> str:
    """One row per task metric (task, metric, score, 95% interval, p vs chance, chance, n), primary metrics first,
    then the overall scores and what limited the run."""
    lines = []
    if "control" in summary:
        lines += [f"**vision control ({summary['control']['kind']})**: not a leaderboard result", ""]
    note = partial_note(summary)
    if note:
        lines += [f"**{note}**: not comparable with full runs", ""]
    lines += ["| task | metric | score | 95% CI | p vs chance | chance | n |", "|---|---|---:|---:|---:|---:|---:|"]
    for task in summary["tasks"].values():
        primary = task["primary_metric"]
        for metric in [primary, *(m for m in task["metrics"] if m != primary)]:
            is_primary = metric == primary
            chance = f"{task['chance']:.3f}" if is_primary else ""
            label = f"**{metric}**" if is_primary else metric
            ci, p = (interval(task), p_value(task.get("p_value"))) if is_primary else ("", "")
            lines.append(
                f"| {task['display_name']} | {label} | {task['metrics'][metric]:.3f} | {ci} | {p} | {chance} | "
                f"{task_n(task)} |"
            )
        for metric, value in task.get("extra_metrics", {}).items():
            lines.append(f"| {task['display_name']} | {metric} (extra) | {value:.3f} |  |  |  | {task['n']} |")
    lines += breakdown_lines(summary)
    official = summary.get("overall_statistics", {})
    missing = official.get("missing", [])
    headline = f"**{summary['overall']:.3f}** {interval(official)}".rstrip()
    lines += ["", f"Overall (mean of the 11 primary metrics, a missing task counts 0): {headline}"]
    evaluated = summary.get("overall_evaluated")
    if missing:
        lines[-1] += f", not comparable with complete runs: {len(missing)} of 11 tasks missing ({', '.join(missing)})"
        if evaluated:
            lines.append(
                f"Mean over the {len(evaluated['tasks'])} evaluated tasks: **{evaluated['score']:.3f}** "
                f"{interval(evaluated)}, p vs chance {p_value(evaluated['p_value'])}"
            )
    elif "p_value" in official:
        lines[-1] += f", p vs chance {p_value(official['p_value'])}, n {official['n']} items"
    lines.append(
        f"Overall chance-normalised ((score - chance) / (1 - chance)): {summary['overall_chance_normalized']:.3f}"
    )
    if "bootstrap" in summary:
        lines.append(
            f"95% CI: percentile bootstrap over items, clustered by the unit they share, "
            f"{summary['bootstrap']['n_resamples']} resamples, seed {summary['bootstrap']['seed']}"
        )
    resampled_by_item = [
        f"{task['display_name']} ({task['cluster_note'].removeprefix('resampled by item: ')})"
        for task in summary["tasks"].values()
        if task.get("cluster_note")
    ]
    if resampled_by_item:
        lines.append(f"Resampled by item, the units being too few: {', '.join(resampled_by_item)}")
    unparsable = {task["display_name"]: task["unparsable"] for task in summary["tasks"].values() if task["unparsable"]}
    if unparsable:
        listed = ", ".join(f"{name} {count}" for name, count in unparsable.items())
        lines.append(f"Unparsable answers (counted wrong): {listed}")
    fallback = {
        task["display_name"]: task["labels_fallback"]
        for task in summary["tasks"].values()
        if task.get("labels_fallback")
    }
    if fallback:
        listed = ", ".join(f"{name} {count}" for name, count in fallback.items())
        lines.append(f"Items without released labels (objects recognised by their images): {listed}")
    for task in summary.get("not_applicable", {}).values():
        lines.append(
            f"Not applicable (not scored; counts 0 in the overall score): {task['display_name']}: {task['reason']}"
        )
    truncated = {task["display_name"]: task["truncated"] for task in summary["tasks"].values() if task.get("truncated")}
    if truncated:
        listed = ", ".join(f"{name} {count}" for name, count in truncated.items())
        lines.append(f"Items longer than the model's context (it saw their first tokens only): {listed}")
    if summary.get("quick"):
        quick = summary["quick"]
        lines.insert(
            0,
            f"**Quick check, not an official score**: the first {quick['limit']} items per task, at most "
            f"{quick['max_new_tokens']} new tokens per answer.\n",
        )
    usage = summary.get("api_usage")
    if usage:
        cost = f", cost ${usage['cost_usd']:.4f}" if "cost_usd" in usage else ""
        lines.append(
            f"API usage ({usage['model']} @ {usage['endpoint']}): {usage['requests']} requests, "
            f"{usage['cached_answers']} answers from the cache, {usage['prompt_tokens']} prompt + "
            f"{usage['completion_tokens']} completion tokens{cost}"
        )
    return "\n".join(lines) + "\n"


def breakdown_lines(summary: dict) -> list[str]:
    """A table of each task's score per group (``by_source``, ``by_<column>``), where the summary has any."""
    rows = []
    for task in summary["tasks"].values():
        for key, groups in task.items():
            if key.startswith("by_"):
                for group, statistics in groups.items():
                    rows.append(
                        f"| {task['display_name']} | {key[3:]} = {group} | {statistics['score']:.3f} | "
                        f"{interval(statistics)} | {p_value(statistics['p_value'])} | {statistics['n']} |"
                    )
    if not rows:
        return []
    return ["", "| task | group | score | 95% CI | p vs chance | n |", "|---|---|---:|---:|---:|---:|", *rows]


def error_bars(statistics: list[dict]) -> list[list[float]] | None:
    """Matplotlib's ``yerr`` (below, above) from the scores' intervals; None where any lacks one."""
    if not all("ci_low" in item for item in statistics):
        return None
    return [
        [max(0.0, item["score"] - item["ci_low"]) for item in statistics],
        [max(0.0, item["ci_high"] - item["score"]) for item in statistics],
    ]


def plot_scores(summary: dict, path: Path) -> None:
    """Bar per task (primary metric) with its chance level marked."""
    tasks = list(summary["tasks"].values())
    figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(tasks) + 1), 4))
    positions = range(len(tasks))
    axis.bar(
        positions,
        [task["metrics"][task["primary_metric"]] for task in tasks],
        yerr=error_bars(tasks),
        capsize=3,
        color="tab:blue",
        label="score (95% CI)",
    )
    axis.scatter(
        positions, [task["chance"] for task in tasks], color="tab:red", marker="_", s=600, label="chance", zorder=3
    )
    axis.set_xticks(list(positions), [task["display_name"] for task in tasks], rotation=40, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("primary metric")
    note = partial_note(summary)
    if note:
        axis.set_title(note, fontsize="small")
    axis.legend()
    figure.tight_layout()
    write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)


def count_accuracy_by_number(entries: list[dict], n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict[int, dict]:
    """Object Counting accuracy for each true count, from the run's prediction entries: ``score``, ``n`` and the 95%
    interval (``ci_low``, ``ci_high``) of the items of that count, clustered as the task's are (:mod:`.units`)."""
    by_count: dict[int, list[dict]] = defaultdict(list)
    for entry in entries:
        by_count[parse_number(entry["gold"][0])].append(entry)
    accuracy = {}
    for count in sorted(by_count):
        items = by_count[count]
        labels = clustering(
            [entry.get("unit", "") for entry in items],
            [entry.get("unit_kind", ITEM_UNIT) for entry in items],
            [entry["id"] for entry in items],
        ).labels
        result = bootstrap_mean([entry["scores"]["acc"] for entry in items], labels, n_resamples=n_resamples, seed=seed)
        accuracy[count] = {"score": result.estimate, "ci_low": result.low, "ci_high": result.high, "n": result.n}
    return accuracy


def plot_count_accuracy(entries: list[dict], path: Path, n_resamples: int = N_RESAMPLES, seed: int = 0) -> None:
    """Object Counting accuracy for each true count (how performance falls with more objects), with 95% intervals."""
    accuracy = count_accuracy_by_number(entries, n_resamples, seed)
    counts = list(accuracy)
    statistics = list(accuracy.values())
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.bar(counts, [item["score"] for item in statistics], yerr=error_bars(statistics), capsize=3, color="tab:green")
    axis.set_xticks(counts)
    axis.set_xlabel("true count")
    axis.set_ylabel("accuracy (95% CI)")
    axis.set_ylim(0, 1)
    figure.tight_layout()
    write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)
