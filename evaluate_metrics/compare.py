"""Compare evaluation runs side by side: ``babyvlm compare RUN_DIR... --output DIR``.

Each run is a ``babyvlm eval`` output folder (``summary.json``, ``run.json``, ``predictions.jsonl``),
named ``[LABEL[@DOMAIN]=]RUN_DIR``: the label defaults to the model's name in ``run.json`` (a Hub id, a local
folder's last two parts, an API model's name; :func:`~.predictions.model_name`), followed by the run folder's name
where two runs would share a label; the domain to ``SAYCam`` / ``Ego4D`` when the run's data path names one (else it
is left out). Writes:

- ``comparison.md`` and ``comparison.html``: one row per task (primary metric), one column per run,
  with the task's chance level, then the overall scores; not-applicable or missing tasks are "n/a";
- ``compare_tasks.png``: grouped bars per task with chance (and human, where given) marks;
- ``compare_overall.png``: the overall score per run, with chance and human lines;
- ``compare_domains.png`` (when some model has both a SAYCam and an Ego4D run): in-domain vs
  out-of-domain overall score per model;
- ``count_by_number.png``: the paper's plot, Object Counting accuracy by true count, one line per run.

Human adult figures are only known overall (≈ 0.93, third-party; evaluate_metrics/README.md, "Comparing
runs"); ``--human FILE`` adds per-task figures (``{"baby_pv": 0.98, ..., "overall": 0.93}``).
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.tasks import TASKS, canonical_task

from babyvlm.command_line import command_parser, fail
from babyvlm.locking import OutputLockedError, locks_outputs

from .devcv.uncertainty import N_RESAMPLES
from .paired import compare_pair, interval_text
from .predictions import PREDICTIONS_FILE, RUN_FILE, distinct_names, model_name
from .report import count_accuracy_by_number, error_bars, partial_note, plt, write_atomic, write_text_atomic
from .statistics import TaskSample

logger = logging.getLogger(__name__)
HUMAN_OVERALL = 0.93  # human adults, overall (third-party, approximate; evaluate_metrics/README.md, "Comparing runs")
DOMAINS = {"saycam": "SAYCam", "ego4d": "Ego4D"}
IN_DOMAIN, OUT_OF_DOMAIN = "SAYCam", "Ego4D"


@dataclass
class Run:
    """One evaluation run read back from its output folder."""

    label: str
    domain: str | None
    summary: dict
    count_accuracy: dict[int, dict] = field(default_factory=dict)
    """Per true count: Object Counting's ``score``, ``n`` and interval (:func:`~.report.count_accuracy_by_number`)."""
    config: dict = field(default_factory=dict)
    samples: dict[str, TaskSample] = field(default_factory=dict)
    """Per harness key: the run's scored items (for the paired tests)."""
    folder: Path = field(default_factory=Path)

    @property
    def name(self) -> str:
        name = f"{self.label} ({self.domain})" if self.domain else self.label
        if self.control:
            name += f" [control: {self.control}]"
        return f"{name} (partial)" if partial_note(self.summary) else name

    @property
    def model(self) -> str | None:
        """The model's name from ``run.json`` (None where the run records none)."""
        return model_name(self.config)

    @property
    def control(self) -> str | None:
        """The vision control the run is (``shuffled-images``, ``blank-images``), None for a real run."""
        return (self.summary.get("control") or {}).get("kind")

    def score(self, harness_key: str) -> float | None:
        task = self.summary["tasks"].get(harness_key)
        return None if task is None else task["metrics"][task["primary_metric"]]

    def statistics(self, harness_key: str) -> dict | None:
        """The task's score with its interval (the summary's, else the bare score)."""
        task = self.summary["tasks"].get(harness_key)
        if task is None:
            return None
        return {"score": self.score(harness_key), **{key: task[key] for key in ("ci_low", "ci_high") if key in task}}


def _domain_of(data_path: str) -> str | None:
    found = {name for key, name in DOMAINS.items() if key in data_path.lower()}
    return found.pop() if len(found) == 1 else None


def read_json_file(path: str | Path):
    """The JSON in `path`; a file that cannot be read or is not JSON is a `ValueError` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ValueError(f"{path} is not a readable JSON file ({reason})") from error


def read_run(spec: str) -> Run:
    """A run from ``[LABEL[@DOMAIN]=]RUN_DIR``."""
    label = domain = None
    name, separator, folder = spec.rpartition("=")
    if separator:
        label, _, domain = name.partition("@")
    folder = Path(folder)
    summary_file = folder / "summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{folder}: no summary.json (not a finished babyvlm eval run)")
    summary = read_json_file(summary_file)
    run_config = read_json_file(folder / RUN_FILE) if (folder / RUN_FILE).is_file() else {}
    label = label or model_name(run_config) or folder.name
    domain = domain or _domain_of(run_config.get("data", ""))
    entries: dict[str, list[dict]] = {}
    if (folder / PREDICTIONS_FILE).is_file():
        for number, line in enumerate((folder / PREDICTIONS_FILE).read_text().splitlines(), start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{folder / PREDICTIONS_FILE} line {number} is not valid JSON ({error})") from error
            entries.setdefault(entry["task"], []).append(entry)
    # Only the items the summary scored (a log may hold more, from a resumed run with a larger --limit).
    samples = {}
    for key, task in summary["tasks"].items():
        scored = entries.get(task["task"], [])[: task["n"]]
        if len(scored) == task["n"]:
            samples[key] = TaskSample.from_entries(TASKS[task["task"]], scored)
    count_entries = [
        entry for name, logged in entries.items() if canonical_task(name).accuracy_by_true_count for entry in logged
    ]
    count_accuracy = count_accuracy_by_number(count_entries, **summary.get("bootstrap", {})) if count_entries else {}
    return Run(label, domain, summary, count_accuracy, run_config, samples, folder)


def read_runs(specs: list[str]) -> list[Run]:
    """The runs ``specs``, each named apart: where two would show one name (two runs of one model), each label is
    followed by its run folder's name."""
    runs = [read_run(spec) for spec in specs]
    for run, name in zip(runs, distinct_names([run.name for run in runs], [run.folder for run in runs])):
        run.label += name.removeprefix(run.name)
    return runs


def task_rows(runs: list[Run]) -> list[str]:
    """The harness keys scored or reported by any run, in the registry's order."""
    present = set()
    for run in runs:
        present |= set(run.summary["tasks"]) | set(run.summary.get("not_applicable", {}))
    return [task.harness_key for task in TASKS.values() if task.harness_key in present]


def item_count_differences(runs: list[Run]) -> list[str]:
    """One line per task that the runs scored on different numbers of items (different datasets, splits or
    limits), naming each run's n: their scores are not comparable item for item."""
    lines = []
    for key in task_rows(runs):
        counts = {run.name: run.summary["tasks"][key]["n"] for run in runs if key in run.summary["tasks"]}
        if len(set(counts.values())) > 1:
            shown = ", ".join(f"{name} n={n}" for name, n in counts.items())
            lines.append(f"{key} was scored on different items ({shown}): the runs read different data")
    return lines


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _score_cell(run: Run, harness_key: str) -> str:
    """Score, 95% interval and n of a run's task ("n/a" where not run)."""
    task = run.summary["tasks"].get(harness_key)
    if task is None:
        return "n/a"
    interval = f" [{task['ci_low']:.3f}, {task['ci_high']:.3f}]" if "ci_low" in task else ""
    return f"{run.score(harness_key):.3f}{interval} (n={task['n']})"


AUDIT_BASELINES = {"majority": "prior-only (majority)", "pixel_solver": "pixel solver (no prompt)"}
"""The shortcut audit's solvers shown as baselines (``babyvlm data audit --json``): name -> column title."""


def audit_baselines(audit: list[dict], split: str | None) -> dict[str, dict[str, float]]:
    """Per baseline, per harness key: the audit's accuracy on the runs' split (sources pooled, weighted by items)."""
    pooled: dict[str, dict[str, list[float]]] = {name: {} for name in AUDIT_BASELINES}
    for result in audit:
        if split is not None and result["split"] != split:
            continue
        key = TASKS[result["task"]].harness_key
        for name in AUDIT_BASELINES:
            if result.get(name) is not None:
                total = pooled[name].setdefault(key, [0.0, 0])
                total[0] += result[name] * result["items"]
                total[1] += result["items"]
    return {
        name: {key: value / items for key, (value, items) in by_key.items() if items}
        for name, by_key in pooled.items()
        if by_key
    }


def comparison_rows(
    runs: list[Run], human: dict[str, float], baselines: dict[str, dict[str, float]] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (task, metric, chance, human, the audit's baselines, one column per
    run)."""
    tasks = {task.harness_key: task for task in TASKS.values()}
    baselines = baselines or {}
    header = ["task", "metric", "chance", "human", *(AUDIT_BASELINES[name] for name in baselines)]
    header += [run.name for run in runs]
    rows = []
    for key in task_rows(runs):
        task = tasks[key]
        rows.append(
            [
                task.display_name,
                task.primary_metric,
                f"{task.chance:.3f}",
                _cell(human.get(key)),
                *(_cell(values.get(key)) for values in baselines.values()),
                *(_score_cell(run, key) for run in runs),
            ]
        )
    rows.append(["**Overall**", "mean of 11", "", _cell(human.get("overall")), *([""] * len(baselines))])
    rows[-1] += [_overall_cell(run) for run in runs]
    rows.append(["Overall chance-normalised", "", "0.000", "", *([""] * len(baselines))])
    rows[-1] += [f"{run.summary['overall_chance_normalized']:.3f}" for run in runs]
    return header, rows


def _overall_cell(run: Run) -> str:
    official = run.summary.get("overall_statistics", {})
    interval = f" [{official['ci_low']:.3f}, {official['ci_high']:.3f}]" if "ci_low" in official else ""
    cell = f"**{run.summary['overall']:.3f}**{interval}"
    if official.get("missing"):
        cell += f" (not comparable: {len(official['missing'])} tasks missing)"
    return cell


PAIR_HEADER = ["task", "n", "difference (A - B)", "95% CI", "test", "p", "p (Holm)", "result"]
PAIR_INTRO = (
    "Per task: exact McNemar for per-item accuracies, a paired bootstrap of the difference otherwise; p (Holm): "
    "corrected across the pair's tasks; result at p < 0.05."
)


@dataclass
class PairSection:
    """The paired tests of two runs: a title, one row per task (:data:`PAIR_HEADER`) and the pair's warnings."""

    title: str
    rows: list[list[str]]
    warnings: list[str]


def pair_sections(runs: list[Run], n_resamples: int = N_RESAMPLES, seed: int = 0) -> list[PairSection]:
    """The paired tests of every pair of runs: difference, interval, test, p, Holm p and verdict per task; a model
    beside its own vision control is an "image dependence" pair, its tasks flagged where the control does as well."""
    sections = []
    for index, run_a in enumerate(runs):
        for run_b in runs[index + 1 :]:
            same_model = run_a.model == run_b.model if run_a.model else run_a.label == run_b.label
            control_pair = same_model and (run_a.control is None) != (run_b.control is None)
            if control_pair and run_a.control is not None:  # the model first, its control second
                run_a, run_b = run_b, run_a
            rows, warnings = compare_pair(run_a.config, run_a.samples, run_b.config, run_b.samples, n_resamples, seed)
            if not rows:
                continue
            cells = []
            for row in rows:
                verdict = row.verdict(run_a.name, run_b.name)
                if control_pair and not verdict.startswith(f"{run_a.name} >"):
                    verdict = "**flag: the control scores as well (no use of the images shown)**"
                cells.append(
                    [
                        row.display_name,
                        str(row.n),
                        f"{row.difference:+.3f}",
                        interval_text(row.ci_low, row.ci_high),
                        row.test,
                        f"{row.p_value:.3g}",
                        "" if row.p_holm is None else f"{row.p_holm:.3g}",
                        verdict,
                    ]
                )
            title = f"{'image dependence: ' if control_pair else ''}{run_a.name} vs {run_b.name}"
            sections.append(PairSection(title, cells, warnings))
    return sections


def markdown_rows(header: list[str], rows: list[list[str]], align: str) -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    rules = "|".join("---" if side == "l" else "---:" for side in align)
    lines = ["| " + " | ".join(header) + " |", f"|{rules}|", *("| " + " | ".join(row) + " |" for row in rows)]
    return "\n".join(lines) + "\n"


def pair_markdown(sections: list[PairSection]) -> str:
    if not sections:
        return ""
    parts = [f"\n## Paired tests\n\n{PAIR_INTRO}\n"]
    for section in sections:
        parts.append(f"\n### {section.title}\n\n" + markdown_rows(PAIR_HEADER, section.rows, "lrrrlrrl"))
        parts += [f"\nWarning: {warning}\n" for warning in section.warnings]
    return "".join(parts)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    return (
        markdown_rows(header, rows, "ll" + "r" * (len(header) - 2))
        + "\nn/a: not applicable to the model (e.g. log-likelihoods from an API) or not run.\n"
    )


def _html_cell(tag: str, text: str) -> str:
    bold = text.startswith("**")
    text = html.escape(text.strip("*"))
    return f"<{tag}>{f'<b>{text}</b>' if bold else text}</{tag}>"


def html_rows(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(_html_cell("th", text) for text in header)
    body = "".join("<tr>" + "".join(_html_cell("td", text) for text in row) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def html_report(header: list[str], rows: list[list[str]], notes: list[str], sections: list[PairSection]) -> str:
    """The scores table, its warnings, then the paired tests of every pair, as one HTML page."""
    parts = [html_rows(header, rows)]
    parts.append("<p>n/a: not applicable to the model (e.g. log-likelihoods from an API) or not run.</p>\n")
    parts += [f"<p><b>Warning</b>: {html.escape(note)}</p>\n" for note in notes]
    if sections:
        parts.append(f"<h2>Paired tests</h2>\n<p>{html.escape(PAIR_INTRO)}</p>\n")
    for section in sections:
        parts.append(f"<h3>{html.escape(section.title)}</h3>\n" + html_rows(PAIR_HEADER, section.rows))
        parts += [f"<p><b>Warning</b>: {html.escape(warning)}</p>\n" for warning in section.warnings]
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>DevCV comparison</title>'
        "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>\n" + "".join(parts) + "</body></html>\n"
    )


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)


def plot_tasks(runs: list[Run], human: dict[str, float], path: Path) -> None:
    keys = task_rows(runs)
    tasks = {task.harness_key: task for task in TASKS.values()}
    width = 0.8 / len(runs)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) + 2), 4.5))
    for index, run in enumerate(runs):
        positions = [k - 0.4 + width * (index + 0.5) for k in range(len(keys))]
        statistics = [run.statistics(key) or {"score": 0.0, "ci_low": 0.0, "ci_high": 0.0} for key in keys]
        yerr = error_bars(statistics)
        axis.bar(positions, [item["score"] for item in statistics], width, yerr=yerr, capsize=2, label=run.name)
    axis.scatter(
        range(len(keys)), [tasks[key].chance for key in keys], color="black", marker="_", s=500, label="chance"
    )
    known = [(k, human[key]) for k, key in enumerate(keys) if key in human]
    if known:
        axis.scatter(*zip(*known), color="tab:red", marker="*", s=80, label="human adults")
    axis.set_xticks(range(len(keys)), [tasks[key].display_name for key in keys], rotation=40, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("primary metric")
    axis.legend(fontsize="small")
    _save(figure, path)


def plot_overall(runs: list[Run], human: dict[str, float], path: Path) -> None:
    overall_chance = sum(task.chance for task in TASKS.values() if task.in_overall) / sum(
        task.in_overall for task in TASKS.values()
    )
    figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(runs) + 2), 4))
    overall = [{"score": run.summary["overall"], **run.summary.get("overall_statistics", {})} for run in runs]
    # A run missing tasks counts them 0: its bar is hatched and its label says it is not comparable.
    comparable = [item.get("comparable", True) for item in overall]
    bars = axis.bar(range(len(runs)), [run.summary["overall"] for run in runs], yerr=error_bars(overall), capsize=3)
    for bar, is_comparable in zip(bars, comparable):
        if not is_comparable:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
    axis.axhline(overall_chance, color="black", linestyle=":", label="chance")
    axis.axhline(human["overall"], color="tab:red", linestyle="--", label="human adults")
    labels = [run.name if ok else f"{run.name}\n(tasks missing: not comparable)" for run, ok in zip(runs, comparable)]
    axis.set_xticks(range(len(runs)), labels, rotation=30, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("overall (mean of 11 primary metrics)")
    axis.legend(fontsize="small")
    _save(figure, path)


def domain_pairs(runs: list[Run]) -> dict[str, dict[str, dict]]:
    """Per model label with both an in-domain (SAYCam) and an out-of-domain (Ego4D) run: their overall scores with
    their intervals."""
    by_label: dict[str, dict[str, dict]] = {}
    for run in runs:
        if run.domain in (IN_DOMAIN, OUT_OF_DOMAIN):
            overall = {**run.summary.get("overall_statistics", {}), "score": run.summary["overall"]}
            by_label.setdefault(run.label, {})[run.domain] = overall
    return {label: scores for label, scores in by_label.items() if len(scores) == 2}


def plot_domains(pairs: dict[str, dict[str, dict]], path: Path) -> None:
    labels = list(pairs)
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(labels) + 2), 4))
    for offset, domain in ((-0.2, IN_DOMAIN), (0.2, OUT_OF_DOMAIN)):
        name = f"{domain} ({'in' if domain == IN_DOMAIN else 'out of'} domain)"
        overall = [pairs[label][domain] for label in labels]
        positions = [k + offset for k in range(len(labels))]
        axis.bar(positions, [item["score"] for item in overall], 0.4, yerr=error_bars(overall), capsize=3, label=name)
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("overall (95% CI)")
    axis.legend(fontsize="small")
    _save(figure, path)


def plot_count_by_number(runs: list[Run], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    for run in runs:
        if run.count_accuracy:
            statistics = list(run.count_accuracy.values())
            axis.errorbar(
                list(run.count_accuracy),
                [item["score"] for item in statistics],
                yerr=error_bars(statistics),
                marker="o",
                capsize=3,
                label=run.name,
            )
    axis.set_xlabel("true count")
    axis.set_ylabel("Object Counting accuracy (95% CI)")
    axis.set_ylim(0, 1)
    axis.legend(fontsize="small")
    _save(figure, path)


def _output_folder(specs, output_dir, *_, **__) -> list:
    return [output_dir]


@locks_outputs(_output_folder)
def compare_runs(
    specs: list[str],
    output_dir: str | Path,
    human: dict[str, float] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    audit: list[dict] | None = None,
) -> list[Path]:
    """Write the comparison of the runs ``specs`` (``[LABEL[@DOMAIN]=]RUN_DIR``) into ``output_dir``, with the
    paired tests of every pair (``n_resamples`` seeded bootstrap resamples) and, from a shortcut ``audit``
    (``babyvlm data audit --json``), its solvers as baselines. ``output_dir`` is locked while it is written
    (:mod:`babyvlm.locking`): two comparisons never mix their files in one folder.

    Returns the files written."""
    runs = read_runs(specs)
    human = {"overall": HUMAN_OVERALL, **(human or {})}
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    splits = {run.config.get("split") for run in runs}
    baselines = audit_baselines(audit, splits.pop() if len(splits) == 1 else None) if audit else None
    header, rows = comparison_rows(runs, human, baselines)
    written = [output_dir / "comparison.md", output_dir / "comparison.html"]
    differences = item_count_differences(runs)
    for line in differences:
        logger.warning("%s", line)
    notes = differences + [f"{run.name}: {partial_note(run.summary)}" for run in runs if partial_note(run.summary)]
    sections = pair_sections(runs, n_resamples, seed)
    warnings = "".join(f"\n**Warning**: {line}\n" for line in notes)
    write_text_atomic(written[0], markdown(header, rows) + warnings + pair_markdown(sections))
    write_text_atomic(written[1], html_report(header, rows, notes, sections))
    plot_tasks(runs, human, output_dir / "compare_tasks.png")
    plot_overall(runs, human, output_dir / "compare_overall.png")
    written += [output_dir / "compare_tasks.png", output_dir / "compare_overall.png"]
    pairs = domain_pairs(runs)
    if pairs:
        plot_domains(pairs, output_dir / "compare_domains.png")
        written.append(output_dir / "compare_domains.png")
    if any(run.count_accuracy for run in runs):
        plot_count_by_number(runs, output_dir / "count_by_number.png")
        written.append(output_dir / "count_by_number.png")
    return written


def main(argv: list[str] | None = None) -> int:
    """``babyvlm compare``."""
    parser = command_parser(
        "compare",
        "Compare babyvlm eval runs side by side.",
        [
            "babyvlm compare eval/babyllava eval/qwen --output comparison",
            "babyvlm compare baby@saycam=eval/saycam baby@ego4d=eval/ego4d --output domains --human human.json",
        ],
    )
    parser.add_argument("runs", nargs="+", metavar="[LABEL[@DOMAIN]=]RUN_DIR", help="babyvlm eval output folders")
    parser.add_argument("--output", required=True, help="folder for the tables and plots")
    parser.add_argument("--human", help='JSON file of human figures: {"baby_pv": 0.98, ..., "overall": 0.93}')
    parser.add_argument(
        "--audit", help="JSON of babyvlm data audit --json on the runs' data: its solvers are shown as baselines"
    )
    parser.add_argument("--bootstrap", type=int, default=N_RESAMPLES, metavar="N", help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    args = parser.parse_args(argv)
    try:
        human = read_json_file(args.human) if args.human else None
        audit = read_json_file(args.audit) if args.audit else None
        written = compare_runs(args.runs, args.output, human, args.bootstrap, args.seed, audit)
    except (FileNotFoundError, ValueError, KeyError, OutputLockedError) as error:
        return fail(parser, error)
    print(Path(written[0]).read_text())
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
