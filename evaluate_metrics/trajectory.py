"""A developmental trajectory: checkpoints along the axis of experience, each scored on DevCV and the zero-shot probes.

A checkpoint is a model folder; a folder holding ``age_checkpoints/`` (or model folders directly) stands for
each of them; ``owner/name@revision`` is a Hub revision. Each checkpoint's experience comes from the
``exposure.json`` beside its ``config.json`` (format ``babyvlm-exposure/1``); without one, a folder named
``age-<months>mo`` still gives its age, and anything else can be ordered only as given (``x="checkpoint"``).

:func:`trajectory` (``babyvlm trajectory``) scores each checkpoint with the runner of ``babyvlm eval`` and the
zero-shot probes, then writes into its output folder:

- ``checkpoints/<name>/eval/`` (the runner's folder, resumable as ``babyvlm eval``), ``checkpoints/<name>/probes/``
  and ``checkpoints/<name>/scores.json`` (the checkpoint's scores, the content digests and settings they come from);
- ``trajectory.json``: a row per checkpoint (name, exposure, place on the axis, per task and probe score, n,
  ``ci_low``, ``ci_high``, ``p_value``, chance), each task's and probe's age of acquisition
  (:func:`~.acquisition.task_acquisition_age`), the probes' word ages (:func:`~.acquisition.word_acquisition_age`)
  and, given children's norms, their rank correlation (:func:`~.acquisition.aoa_correlation`);
- ``trajectory.csv`` (a line per checkpoint and task or probe) and ``plots/<task or probe>.png``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

from babyvlm.locking import locks_outputs
from babyvlm.staging import write_text
from babyvlm.training.exposure import AGE_CHECKPOINTS, EXPOSURE_FILE, folder_age, read_exposure

from .acquisition import SIGNIFICANCE, aoa_correlation, task_acquisition_age, word_acquisition_age
from .data import MissingTaskError, resolve_tasks, task_data_files
from .devcv.tasks import LOGLIKELIHOOD, DevCVTask, canonical_task
from .devcv.uncertainty import N_RESAMPLES
from .harness import AUTO_DTYPE
from .predictions import RUN_FILE, run_content
from .probes.matching import PROBE as MATCHING
from .probes.matching import load_pairs, utterance_frame_matching
from .probes.scoring import ProbeResult, plain_chat, write_result
from .probes.vocabulary import (
    LOOKING_WHILE_LISTENING,
    PICTURE_VOCABULARY,
    load_items,
    zero_shot_looking_while_listening,
    zero_shot_picture_vocabulary,
)
from .report import error_bars, interval, write_atomic
from .runner import evaluate_devcv, process_state

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402

logger = logging.getLogger(__name__)
AXES = {"months": "age_months_reached", "hours": "video_hours", "words": "words", "checkpoint": None}
"""``--x``: the exposure field each axis reads (``checkpoint``: the order given)."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    source: str
    path: Path
    exposure: dict | None

    def experience(self, axis: str, index: int) -> float:
        """The checkpoint's place on ``axis`` (one of :data:`AXES`); ``ValueError`` naming it where unknown."""
        if axis not in AXES:
            raise ValueError(f"unknown axis {axis!r}; choose one of {', '.join(AXES)}")
        if axis == "checkpoint":
            return float(index)
        value = (self.exposure or {}).get(AXES[axis])
        if value is None and axis == "months":
            value = final_age(self.exposure or {})
            value = folder_age(self.path.name) if value is None else value
        if value is None:
            why = f"{EXPOSURE_FILE} has no {AXES[axis]}" if self.exposure else f"no {EXPOSURE_FILE}"
            raise ValueError(
                f"{self.source}: {why} and its name gives no age, so it cannot be placed on the {axis} axis "
                "(--x checkpoint orders the checkpoints as given)"
            )
        return float(value)


def final_age(exposure: dict) -> float | None:
    """The age a final folder's training stream reached, which its ``exposure.json`` leaves out (an age checkpoint
    records it as ``age_months_reached``): the oldest age its last stage trained on, else its lineage's."""
    stages = exposure.get("stages") or [{}]
    reached = stages[-1].get("age_months_range") or exposure.get("age_months_range")
    return None if reached is None else reached[1]


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _models_by_age(parent: Path) -> list[Path]:
    """The model folders directly in ``parent``, in age order (``age-<months>mo``), then the others by name."""
    found = [child for child in parent.iterdir() if child.is_dir() and _is_model(child)]
    return sorted(found, key=lambda c: (folder_age(c.name) is None, folder_age(c.name) or 0.0, c.name))


def _folder_checkpoints(folder: Path) -> list[Path]:
    """A folder's checkpoints: a training output folder (a model holding ``age_checkpoints/``) is its age
    checkpoints in age order followed by its final model; any other model folder is itself; a folder of model
    folders (or one holding ``age_checkpoints/``) is each of them in age order."""
    ages = folder / AGE_CHECKPOINTS
    if _is_model(folder):
        return [*(_models_by_age(ages) if ages.is_dir() else []), folder]
    found = _models_by_age(ages if ages.is_dir() else folder)
    if not found:
        raise ValueError(f"{folder}: neither a model folder (config.json) nor a folder of checkpoints")
    return found


def resolve_checkpoints(references: list[str]) -> list[Checkpoint]:
    """Each reference as its checkpoints, in the order given: a training output folder (a model with
    ``age_checkpoints/``) as its age checkpoints in age order followed by its final model, a folder of age
    checkpoints in age order."""
    from babyvlm.checkpoint_sources import hub_errors
    from babyvlm.hub import parse_hub_reference

    checkpoints = []
    for reference in references:
        folder = Path(reference).expanduser()
        if folder.is_dir():
            found = _folder_checkpoints(folder)
            checkpoints += [Checkpoint(c.name, str(c), c, read_exposure(c)) for c in found]
            continue
        hub = parse_hub_reference(reference)
        if hub is None:
            raise FileNotFoundError(
                f"checkpoint {reference}: no such folder, and not a Hub reference owner/name@revision"
            )
        from huggingface_hub import snapshot_download

        repo_id, revision = hub
        with hub_errors(repo_id, revision):
            path = Path(snapshot_download(repo_id, revision=revision))
        name = f"{repo_id.replace('/', '--')}@{revision or 'main'}"
        checkpoints.append(Checkpoint(name, reference, path, read_exposure(path)))
    names = [c.name for c in checkpoints]
    if len(set(names)) != len(names):
        raise ValueError(
            f"two checkpoints share a name ({', '.join(sorted({n for n in names if names.count(n) > 1}))})"
        )
    return checkpoints


# --- Evaluating a trajectory ---------------------------------------------------------------------------------------

TRAJECTORY_FILE = "trajectory.json"
TRAJECTORY_FORMAT = "babyvlm-trajectory/1"
TRAJECTORY_CSV = "trajectory.csv"
PLOTS_FOLDER = "plots"
CHECKPOINTS_FOLDER = "checkpoints"
SCORES_FILE = "scores.json"
"""In each ``checkpoints/<name>/``: the checkpoint's row, the content it was computed from and the settings; a
checkpoint whose file matches both is finished and is not recomputed."""
PROBES = {"picture_vocabulary": PICTURE_VOCABULARY, "looking_while_listening": LOOKING_WHILE_LISTENING}
"""``--probes``: the zero-shot probes a DevCV folder feeds, by the task whose items they read."""
PAIRS_CONFIG = "default"
"""The one config of an image-utterance corpus (``babyvlm data saycam``'s ``image_utterance``)."""
_PROBE_FUNCTIONS = {
    PICTURE_VOCABULARY: zero_shot_picture_vocabulary,
    LOOKING_WHILE_LISTENING: zero_shot_looking_while_listening,
}
UNTUNED_NOTE = (
    "The checkpoints were not instruction-tuned (no --instruct): only the zero-shot probes and the log-likelihood "
    "tasks ({tasks}) are meaningful; a generated answer needs the task's answer format, which an un-tuned "
    "checkpoint has not learned, so its generated-task scores say little about what it knows."
)
AXIS_LABELS = {
    "months": "age reached in the training stream (months)",
    "hours": "video seen (hours)",
    "words": "words heard",
    "checkpoint": "checkpoint (order given)",
}
STATISTICS = ("score", "n", "ci_low", "ci_high", "p_value", "chance")


def _probe_name(name: str) -> str:
    """A ``--probes`` entry as its probe name: the task's name or alias, or the probe's own name."""
    if name in _PROBE_FUNCTIONS:
        return name
    if name == MATCHING:
        raise ValueError(f"{MATCHING} reads an image-utterance corpus, not DevCV items: give it with --pairs CORPUS")
    try:
        task = canonical_task(name).name
    except (KeyError, ValueError):
        task = None
    if task not in PROBES:
        raise ValueError(f"no zero-shot probe {name!r}; choose from {', '.join(PROBES)}")
    return PROBES[task]


def _probe_task(probe: str) -> str:
    return next(task for task, name in PROBES.items() if name == probe)


def _scores_of_task(statistics: dict) -> dict:
    task = canonical_task(statistics["task"])
    return {
        **{key: statistics[key] for key in STATISTICS},
        "display_name": statistics["display_name"],
        "log_likelihood": task.protocol == LOGLIKELIHOOD,
    }


def _probe_display_name(probe: str) -> str:
    if probe == MATCHING:
        return "utterance-frame matching"
    return f"zero-shot {canonical_task(_probe_task(probe)).display_name}"


def _probe_toolbox_ages(probe: str) -> list | None:
    """The ages the NIH Baby Toolbox measure a probe stands in for covers (none for utterance-frame matching)."""
    return None if probe == MATCHING else canonical_task(_probe_task(probe)).toolbox_age_months


def _scores_of_probe(result: ProbeResult) -> dict:
    """A probe's statistics and its right-of-trials per word (or phrase), for the words' ages of acquisition (none
    where the probe's choices are about no word: utterance-frame matching)."""
    words: dict[str, list[int]] = {}
    for label, right in zip(result.labels, result.correct):
        counts = words.setdefault(label.strip().lower(), [0, 0])
        counts[0] += right
        counts[1] += 1
    return {
        "score": result.accuracy,
        "n": result.n,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
        "chance": result.chance,
        "display_name": _probe_display_name(result.probe),
        "words": words,
    }


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _evaluate_checkpoint(
    checkpoint: Checkpoint,
    folder: Path,
    data_dir: Path,
    eval_tasks: list[tuple[DevCVTask, str]],
    probes: list[str],
    settings: dict,
    eval_options: dict,
    pairs: tuple[Path, list[str]] | None = None,
) -> dict:
    """The checkpoint's scores, from its ``scores.json`` where that was computed from the same content and settings,
    else computed: the runner into ``<folder>/eval`` (resumed as ``babyvlm eval`` resumes; started over where the
    checkpoint's or the data's content changed) and the probes into ``<folder>/probes``, utterance-frame matching
    on ``pairs`` (the corpus folder and its split's files) among them."""
    split, limit = settings["split"], settings["limit"]
    eval_files = [file for _, config in eval_tasks for file in task_data_files(data_dir, config, split)]
    probe_files = [
        file
        for _, config in resolve_tasks(data_dir, [_probe_task(p) for p in probes])
        for file in task_data_files(data_dir, config, split)
    ]
    content = run_content(checkpoint.path, data_dir, [*eval_files, *probe_files], folder)
    if pairs is not None:  # the corpus's files, by their place in it: a copied corpus is the same content
        digests = run_content(None, pairs[0], pairs[1], folder)
        content |= {f"pairs/{name.removeprefix('data/')}": digest for name, digest in digests.items()}
    finished = _read_json(folder / SCORES_FILE)
    if finished and finished.get("content") == content and finished.get("settings") == settings:
        logger.info("%s: finished earlier from the same content; not recomputed", checkpoint.name)
        return finished["scores"]
    scores: dict = {"tasks": {}, "probes": {}}
    if eval_tasks:
        eval_dir = folder / "eval"
        recorded = (_read_json(eval_dir / RUN_FILE) or {}).get("content")
        changed = recorded is not None and recorded != run_content(checkpoint.path, data_dir, eval_files, eval_dir)
        if changed:
            logger.warning(
                "%s: its content changed since %s was written; evaluating it again", checkpoint.name, eval_dir
            )
        summary = evaluate_devcv(
            checkpoint.path,
            data_dir,
            eval_dir,
            tasks=[task.name for task, _ in eval_tasks],
            split=split,
            limit=limit,
            bootstrap=settings["bootstrap"],
            seed=settings["seed"],
            restart=changed,
            **eval_options,
        )
        scores["tasks"] = {key: _scores_of_task(task) for key, task in summary["tasks"].items()}
    if probes or pairs is not None:
        chat = plain_chat(checkpoint.path, device=eval_options["device"] or str(process_state().device))
        for probe in probes:
            items = load_items(data_dir, _probe_task(probe), split, limit)
            result = _PROBE_FUNCTIONS[probe](chat, items, seed=settings["seed"], batch_size=eval_options["batch_size"])
            write_result(
                folder, result, model=checkpoint.source, data=str(data_dir), split=split, seed=settings["seed"]
            )
            scores["probes"][probe] = _scores_of_probe(result)
        if pairs is not None:
            corpus, pairs_split = pairs[0], settings["pairs_split"]
            result = utterance_frame_matching(
                chat,
                load_pairs(corpus, pairs_split),
                seed=settings["seed"],
                limit=limit,
                batch_size=eval_options["batch_size"],
            )
            context = {"model": checkpoint.source, "pairs": str(corpus), "split": pairs_split, "seed": settings["seed"]}
            write_result(folder, result, **context)
            scores["probes"][MATCHING] = _scores_of_probe(result)
    write_text(
        folder / SCORES_FILE,
        json.dumps({"content": content, "settings": settings, "scores": scores}, indent=2, sort_keys=True) + "\n",
    )
    return scores


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _output_folder(checkpoints, data_dir, output_dir, **_) -> list:
    return [output_dir]


@locks_outputs(_output_folder)
def trajectory(
    checkpoints: Sequence[str | Checkpoint],
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    tasks: list[str] | None = None,
    probes: list[str] | None = None,
    pairs: str | Path | None = None,
    pairs_split: str = "validation",
    x: str = "months",
    limit: int | None = None,
    split: str = "test",
    aoa_norms: Mapping[str, float] | None = None,
    tune: Callable[[Checkpoint], Checkpoint] | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    device: str | None = None,
    dtype: str = AUTO_DTYPE,
    bootstrap: int = N_RESAMPLES,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Score each checkpoint (references as :func:`resolve_checkpoints` takes them, or :class:`Checkpoint`) on
    ``tasks`` of a DevCV folder (all of its tasks when None; ``[]`` none) with the runner of ``babyvlm eval``, and
    with the zero-shot ``probes`` (:data:`PROBES`; all those the folder feeds when None) and, given an image-utterance
    corpus ``pairs`` (as ``babyvlm probe match --pairs`` takes it), utterance-frame matching on its ``pairs_split``
    (the held-out split by default), and write
    ``trajectory.json``, ``trajectory.csv`` and a plot per task and probe into ``output_dir``; returns the path of
    ``trajectory.json``.

    Each checkpoint's outputs go to ``checkpoints/<name>/`` (``eval/`` as ``babyvlm eval`` writes it, ``probes/``,
    ``scores.json``); a checkpoint finished from the same content (its files' and the data's digests) and settings
    is not recomputed, an interrupted one is resumed, a changed one is evaluated again. ``x`` is the axis of
    experience (:data:`AXES`); ``aoa_norms`` (word -> children's age of acquisition in months, ``x="months"``)
    adds the rank correlation of the probes' word ages with the children's. ``tune`` is called on each checkpoint
    before it is scored and returns the checkpoint to score in its place (``babyvlm trajectory --instruct``
    instruction-tunes it); without it, the document notes that only the probes and the log-likelihood tasks are
    meaningful on checkpoints that were not instruction-tuned. Everything that can be checked is checked before
    a model loads."""
    if not checkpoints:
        raise ValueError("no checkpoints given")
    if process_state().num_processes > 1:
        raise ValueError(
            "a trajectory runs in one process (each checkpoint's evaluation in turn): start it without "
            "accelerate launch or torchrun"
        )
    if x not in AXES:
        raise ValueError(f"unknown axis {x!r}; choose one of {', '.join(AXES)}")
    _check_positive("limit", limit)
    _check_positive("batch_size", batch_size)
    if aoa_norms is not None and x != "months":
        raise ValueError(f"children's ages of acquisition are in months: compare them on --x months, not {x}")
    checkpoints = [
        found for c in checkpoints for found in ([c] if isinstance(c, Checkpoint) else resolve_checkpoints([c]))
    ]
    places = [c.experience(x, k) for k, c in enumerate(checkpoints)]
    data_dir, output_dir = Path(data_dir).resolve(), Path(output_dir)
    eval_tasks = resolve_tasks(data_dir, tasks) if tasks != [] else []
    available = {task.name for task, _ in resolve_tasks(data_dir, None)}
    if probes is None:
        probes = [probe for task, probe in PROBES.items() if task in available]
    else:
        probes = list(dict.fromkeys(_probe_name(name) for name in probes))
        missing = [_probe_task(probe) for probe in probes if _probe_task(probe) not in available]
        if missing:
            raise MissingTaskError(f"{data_dir} has no {', '.join(missing)} items for the zero-shot probes")
    if not eval_tasks and not probes and pairs is None:
        raise ValueError("nothing to score: no tasks and no probes")
    for _, config in eval_tasks:
        task_data_files(data_dir, config, split)
    if pairs is not None:
        pairs = Path(pairs).resolve()
        pairs = (pairs, task_data_files(pairs, PAIRS_CONFIG, pairs_split))
    settings = {
        "tasks": [task.harness_key for task, _ in eval_tasks],
        "probes": probes,
        "pairs_split": None if pairs is None else pairs_split,
        "split": split,
        "limit": limit,
        "bootstrap": bootstrap,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
    }
    eval_options = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "device": device,
        "dtype": dtype,
        "progress": progress,
    }
    rows = []
    for checkpoint, place in zip(checkpoints, places):
        scored = checkpoint if tune is None else tune(checkpoint)
        scores = _evaluate_checkpoint(
            scored,
            output_dir / CHECKPOINTS_FOLDER / checkpoint.name,
            data_dir,
            eval_tasks,
            probes,
            settings,
            eval_options,
            pairs,
        )
        rows.append(
            {
                "name": checkpoint.name,
                "source": checkpoint.source,
                "x": place,
                "exposure": checkpoint.exposure,
                **({"instructed": str(scored.path)} if scored is not checkpoint else {}),
                **scores,
            }
        )
    document = trajectory_document(rows, x, aoa_norms=aoa_norms, instructed=tune is not None)
    path = output_dir / TRAJECTORY_FILE
    write_text(path, json.dumps(document, indent=2) + "\n")
    write_text(output_dir / TRAJECTORY_CSV, trajectory_csv(document))
    for key, measure in measures(document).items():
        plot_measure(document, key, measure, output_dir / PLOTS_FOLDER / f"{key}.png")
    return path


def measures(document: dict) -> dict[str, dict]:
    """Every task and probe of the document's checkpoints, by key: its kind, name, chance and toolbox age range."""
    found = {}
    for row in document["checkpoints"]:
        for kind in ("tasks", "probes"):
            for key, entry in row[kind].items():
                task = canonical_task(key) if kind == "tasks" else None
                found.setdefault(
                    key,
                    {
                        "kind": kind[:-1],
                        "display_name": entry["display_name"],
                        "chance": entry["chance"],
                        "toolbox_age_months": task.toolbox_age_months if task else _probe_toolbox_ages(key),
                        "log_likelihood": task is None or task.protocol == LOGLIKELIHOOD,
                    },
                )
    return found


def _series(rows: list[dict], key: str) -> list[tuple[dict, dict]]:
    """The rows that score ``key``, with its entry, along the axis."""
    return [(row, row[kind][key]) for row in rows for kind in ("tasks", "probes") if key in row[kind]]


def trajectory_document(
    rows: list[dict], x: str, *, aoa_norms: Mapping[str, float] | None = None, instructed: bool = False
) -> dict:
    """``trajectory.json``: the checkpoints' rows in order along ``x``, each task's and probe's age (or place) of
    acquisition, the probes' word ages where the axis is one of experience, and their correlation with
    ``aoa_norms``."""
    rows = sorted(rows, key=lambda row: row["x"])
    document = {
        "format": TRAJECTORY_FORMAT,
        "x": x,
        "x_label": AXIS_LABELS[x],
        "instructed": instructed,
        "significance_level": SIGNIFICANCE,
        "checkpoints": rows,
    }
    found = measures(document)
    if not instructed:
        likelihood = [m["display_name"] for m in found.values() if m["kind"] == "task" and m["log_likelihood"]]
        document["note"] = UNTUNED_NOTE.format(tasks=", ".join(likelihood) or "none scored here")
    document["acquisition"] = {}
    for key, measure in found.items():
        series = _series(rows, key)
        document["acquisition"][key] = {
            "display_name": measure["display_name"],
            x: task_acquisition_age([row["x"] for row, _ in series], [entry["p_value"] for _, entry in series]),
        }
    places = [row["x"] for row in rows]
    norms = None if aoa_norms is None else {word.strip().lower(): age for word, age in aoa_norms.items()}
    if x == "checkpoint" or min(places) <= 0:
        document["words_note"] = f"word ages need an axis of experience above 0; --x {x} gives none"
        return document
    document["words"], document["aoa_correlation"] = {}, {}
    for key, measure in found.items():
        if measure["kind"] != "probe":
            continue
        series = _series(rows, key)
        words = sorted({word for _, entry in series for word in entry["words"]})
        fits = {}
        for word in words:
            counts = [(row["x"], *entry["words"][word]) for row, entry in series if word in entry["words"]]
            fit = word_acquisition_age(*zip(*counts), chance=measure["chance"])
            fits[word] = {x: fit.aoa_months, "slope": fit.slope, "n": fit.n}
        document["words"][key] = fits
        if norms is not None:
            correlation = aoa_correlation({word: fit[x] for word, fit in fits.items()}, norms)
            document["aoa_correlation"][key] = None if correlation is None else asdict(correlation)
    return document


def trajectory_csv(document: dict) -> str:
    """One line per checkpoint and task or probe: its place on the axis, score, n, interval, p-value and chance."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["checkpoint", document["x"], "kind", "key", *STATISTICS])
    for row in document["checkpoints"]:
        for kind in ("tasks", "probes"):
            for key, entry in row[kind].items():
                writer.writerow([row["name"], row["x"], kind[:-1], key, *(entry[name] for name in STATISTICS)])
    return buffer.getvalue()


def plot_measure(document: dict, key: str, measure: dict, path: Path) -> None:
    """A task's or probe's score with its 95% interval along the axis, chance as a line, and on the months axis
    the ages the NIH Baby Toolbox measure covers (in children) shaded."""
    series = _series(document["checkpoints"], key)
    places = [row["x"] for row, _ in series]
    scores = [entry["score"] for _, entry in series]
    figure, axis = plt.subplots(figsize=(6, 4))
    if document["x"] == "months" and measure["toolbox_age_months"]:
        low, high = measure["toolbox_age_months"]
        axis.axvspan(low, high, color="tab:green", alpha=0.12, label=f"toolbox ages, children ({low:g}-{high:g} mo)")
    axis.errorbar(
        places,
        scores,
        yerr=error_bars([entry for _, entry in series]),
        marker="o",
        capsize=3,
        color="tab:blue",
        label="score (95% CI)",
    )
    axis.axhline(measure["chance"], color="tab:red", linestyle="--", label=f"chance ({measure['chance']:.3g})")
    acquired = document["acquisition"][key][document["x"]]
    if acquired is not None:
        axis.axvline(acquired, color="grey", linestyle=":", label=f"acquired ({acquired:g})")
    if document["x"] == "months" and measure["toolbox_age_months"]:
        axis.set_xlim(
            min([*places, measure["toolbox_age_months"][0]]) - 1, max([*places, measure["toolbox_age_months"][1]]) + 1
        )
    n = sorted({entry["n"] for _, entry in series})
    axis.set_title(f"{measure['display_name']} (n = {', '.join(map(str, n))} per checkpoint)", fontsize="medium")
    axis.set_xlabel(document["x_label"])
    axis.set_ylabel("score")
    axis.set_ylim(0, 1)
    axis.legend(fontsize="small")
    figure.tight_layout()
    write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)


def trajectory_table(document: dict) -> str:
    """The console table: per task and probe, each checkpoint's score with its interval, n and p-value, then its
    age of acquisition; the words' correlation with the children's; the note on un-tuned checkpoints."""
    x = document["x"]
    width = max(12, *(len(row["name"]) + 2 for row in document["checkpoints"]))
    lines = []
    for key, measure in measures(document).items():
        generated = not (document["instructed"] or measure["log_likelihood"])
        lines += [
            "",
            f"{measure['display_name']} ({key}, chance {measure['chance']:.3g})"
            + (" [generated: see note]" if generated else ""),
        ]
        lines.append(f"  {'checkpoint':<{width}}{x:>12}{'score':>8}  {'95% CI':<16}{'n':>6}{'p':>11}")
        for row, entry in _series(document["checkpoints"], key):
            lines.append(
                f"  {row['name']:<{width}}{row['x']:>12g}{entry['score']:>8.3f}  "
                f"{interval(entry):<16}{entry['n']:>6}{entry['p_value']:>11.2e}"
            )
        acquired = document["acquisition"][key][x]
        level = document["significance_level"]
        lines.append(
            f"  acquired from {x} {acquired:g} (p < {level:g} there and at every later checkpoint)"
            if acquired is not None
            else f"  not acquired (the last checkpoint is not above chance at p < {level:g})"
        )
        words = document.get("words", {}).get(key)
        if words:
            fitted = sum(fit[x] is not None for fit in words.values())
            lines.append(f"  words: {fitted} of {len(words)} with an age of acquisition in the range (trajectory.json)")
    for key, correlation in document.get("aoa_correlation", {}).items():
        if correlation is None:
            lines.append(f"\n{key}: under 3 words with an age both from the model and the norms; no correlation")
        else:
            lines.append(
                f"\n{key}: word AoA vs children's, Spearman rho {correlation['rho']:.3f} "
                f"[{correlation['ci_low']:.3f}, {correlation['ci_high']:.3f}] over {correlation['n_words']} words"
            )
    if "note" in document:
        lines += ["", document["note"]]
    return "\n".join(lines).lstrip("\n") + "\n"
