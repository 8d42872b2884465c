"""Evaluate a vision-language model on a DevCV dataset folder: :func:`evaluate_devcv` and ``babyvlm eval``.

Writes into the output folder:

- ``predictions.jsonl``: one line per item (output, gold, parsed answer, item scores); resumable.
- ``results.json``: the leaderboard file ``{"results": {"baby_pv": {"acc": ...}, ...}}``, and the same
  as ``devcv_results.json``, which the leaderboard's collation finds (it globs ``**/*_results.json``).
- ``summary.json``: per task metrics, primary metric, chance, chance-normalised score, n and
  unparsable answers, plus the overall score.
- ``results.md``: the Markdown table; ``scores_vs_chance.png`` and, with Object Counting,
  ``count_accuracy_by_true_count.png``.

Data parallel: under ``accelerate launch`` (or ``torchrun``) each process answers a shard of every
task's pending items into its own log; rank 0 gathers the shards and writes the outputs, which are
those of a single-process run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import json
import logging
import os
import sys
import time
from pathlib import Path

import datasets
import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
from babyvlm.evaluate_metrics.devcv.tasks import DIALOGUE, LOGLIKELIHOOD, DevCVTask
from tqdm.auto import tqdm

from babyvlm.chat import content_to_text, count_image_blocks
from babyvlm.command_line import command_parser, fail
from babyvlm.locking import OutputLockedError, locks_outputs

from .answering import (
    AnsweringModel,
    Conversation,
    NotApplicableError,
    UnsupportedOptionError,
    check_options,
)
from .api import MODEL_PREFIX, APIChatModel, APIModelError
from .controls import CONTROLS, apply_control
from .data import MissingTaskError, load_task_split, resolve_tasks, task_data_files
from .devcv.items import score_item
from .devcv.scores import chance_normalized, mean_scores, overall_chance_normalized, overall_score
from .devcv.uncertainty import N_RESAMPLES
from .harness import (
    AUTO_DTYPE,
    DTYPES,
    QUICK_LIMIT,
    QUICK_MAX_NEW_TOKENS,
    STOP_STRING_CHOICES,
    STOP_STRINGS,
    TRUNCATE_AT_MODEL_MAX_LENGTH,
    TRUNCATION_MODES,
    resolve_dtype,
)
from .hub_results import add_push_arguments, check_push_arguments, push_from_args
from .inference import ChatModel, IncompatibleModelError
from .predictions import PredictionLog, RunMismatchError, run_content
from .preflight import check_model_path
from .protocol import (
    MAX_NEW_TOKENS,
    MAX_NEW_TOKENS_PER_ROUND,
    has_memory_labels,
    memory_option_keys,
    run_items,
)
from .report import (
    COUNT_PLOT,
    SCORES_PLOT,
    markdown_table,
    plot_count_accuracy,
    plot_scores,
    write_results_files,
    write_text_atomic,
)
from .statistics import TaskSample, overall_statistics, task_statistics
from .units import item_unit

logger = logging.getLogger(__name__)


def score_entry(task: DevCVTask, record: dict, output, truncated: bool = False) -> dict:
    """The prediction-log line of one answered item (``truncated``: the model saw only its prompt's start)."""
    gold = list(record["answer"])
    if task.protocol == LOGLIKELIHOOD:
        reference, labels = None, ()
    elif task.protocol == DIALOGUE:
        reference, labels = gold, memory_option_keys(record)
    elif len(gold) == 1:
        reference, labels = gold[0], ()
    else:
        raise ValueError(f"{task.name} item {record['id']!r} has {len(gold)} gold answers; its items have one")
    try:
        scored = score_item(task, output, reference, labels)
    except ValueError as error:
        raise ValueError(f"{task.name} item {record['id']!r}: {error}") from error
    entry = {
        "task": task.name,
        "id": record["id"],
        "output": output,
        "gold": gold,
        "parsed": scored.parsed,
        "scores": scored.scores,
        "extra_scores": scored.extra_scores,
        "unparsable": scored.unparsable,
        "source": record.get("source") or "",
    }
    entry["unit_kind"], entry["unit"] = item_unit(record)
    if task.protocol == DIALOGUE:
        entry["labels_fallback"] = not has_memory_labels(record)
    if truncated:
        entry["truncated"] = True
    return entry


def _prompt_size(messages: list[dict]) -> tuple[int, int]:
    """Image blocks and characters of an item's messages: a cheap stand-in for its token count."""
    return count_image_blocks(messages), sum(len(content_to_text(message["content"])) for message in messages)


def item_tokens(chat: AnsweringModel, task: DevCVTask, record: dict) -> int:
    """About how many tokens answering ``record`` puts in one batch row: its user turns and images,
    plus room for an answer per round (a dialogue's last round holds the whole dialogue)."""
    if task.protocol == LOGLIKELIHOOD:  # one image and a phrase per request
        turn = {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": " "}]}
        return chat.estimate_tokens(Conversation([turn], list(record["images"][:1]))) + max(map(len, record["choices"]))
    # The gold answers' turns stand for the model's: their template tokens count, their text is replaced.
    blank = [{"type": "text", "text": " "}]
    messages = [{**m, "content": blank} if m["role"] == "assistant" else m for m in record["messages"]]
    answers = sum(message["role"] == "assistant" for message in messages)
    per_answer = task.max_new_tokens(chat.max_new_tokens, chat.max_new_tokens_per_round)
    return chat.estimate_tokens(Conversation(messages, list(record["images"]))) + answers * per_answer


class DataParallelLaunchError(RuntimeError):
    """The launcher started several processes that are not connected to each other."""


def process_state() -> PartialState:
    """This process's place in a data-parallel run (one process when not launched as several).

    ``PartialState``, unlike ``Accelerator``, does not read ``ACCELERATE_USE_CPU``, and without ``cpu=True`` the CPU
    processes of ``accelerate launch --multi_gpu`` / ``torchrun`` stay unconnected: each would answer every item
    into the same folder. CPU processes are therefore connected (gloo) when asked for or when there is no
    accelerator, and a launch whose processes still see one process each stops here.
    """
    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.accelerator.is_available()
    state = PartialState(cpu=cpu)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise DataParallelLaunchError(
            f"launched as one of {launched} processes (WORLD_SIZE) but connected to {state.num_processes}: "
            "check the launcher's device settings (on CPUs: ACCELERATE_USE_CPU=true)"
        )
    return state


def token_budget_batches(sizes: list[int], batch_size: int, max_batch_tokens: int | None) -> list[slice]:
    """Consecutive batches of at most ``batch_size`` items whose padded size (rows x longest row) fits
    ``max_batch_tokens``; an item larger than the budget goes alone."""
    batches, start = [], 0
    while start < len(sizes):
        end, longest = start + 1, sizes[start]
        while end < len(sizes) and end - start < batch_size:
            longest = max(longest, sizes[end])
            if max_batch_tokens is not None and (end - start + 1) * longest > max_batch_tokens:
                break
            end += 1
        batches.append(slice(start, end))
        start = end
    return batches


def _evaluate_task(
    chat: AnsweringModel,
    task: DevCVTask,
    dataset,
    log: PredictionLog,
    batch_size: int,
    max_batch_tokens: int | None,
    use_system_prompt: bool,
    stop_strings: tuple[str, ...],
    progress: bool,
    state: PartialState,
) -> int:
    """Answer this process's share of the task's items not yet in the log; returns how many items all
    processes answer."""
    ids = dataset["id"]
    if len(set(ids)) != len(ids):
        duplicate = next(item_id for item_id in ids if ids.count(item_id) > 1)
        raise ValueError(f"{task.name}: item id {duplicate!r} occurs more than once")
    done = log.done(task.name)
    # Items of equal size batch without padding, which keeps attention on its fast path; results do
    # not depend on the batching, so the order only changes the speed.
    sizes = [_prompt_size(messages) for messages in dataset["messages"]]
    pending = sorted((index for index, item_id in enumerate(ids) if item_id not in done), key=sizes.__getitem__)
    # Every process sees the same pending list (logs read before anyone writes): take every n-th item.
    share = pending[state.process_index :: state.num_processes]
    tokens = [item_tokens(chat, task, dataset[index]) for index in share] if max_batch_tokens else [0] * len(share)
    with tqdm(
        total=len(ids),
        initial=len(ids) - len(pending),
        desc=task.name,
        unit="item",
        disable=not (progress and state.is_main_process),
    ) as bar:
        for batch in token_budget_batches(tokens, batch_size, max_batch_tokens):
            records = [dataset[index] for index in share[batch]]
            cut: set[int] = set()
            outputs = run_items(chat, task, records, use_system_prompt, stop_strings, cut)
            log.append(
                [
                    score_entry(task, record, output, k in cut)
                    for k, (record, output) in enumerate(zip(records, outputs))
                ]
            )
            bar.update(len(records) * state.num_processes)
    return len(pending)


def summarize(
    entries_by_task: dict[DevCVTask, list[dict]],
    by: dict[DevCVTask, dict[str, dict[str, str]]] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Task metrics with their chance levels, n, intervals and p-values against chance, plus the overall scores,
    from the prediction entries; ``by`` breaks tasks down by item columns (task -> column -> item id -> value)."""
    tasks, statistics = {}, {}
    for task, entries in entries_by_task.items():
        metrics = mean_scores([entry["scores"] for entry in entries])
        statistics[task] = task_statistics(
            TaskSample.from_entries(task, entries), (by or {}).get(task), n_resamples, seed
        )
        tasks[task.harness_key] = {
            **statistics[task][0],
            "task": task.name,
            "display_name": task.display_name,
            "metrics": metrics,
            "primary_metric": task.primary_metric,
            "chance": task.chance,
            "chance_normalized": chance_normalized(metrics[task.primary_metric], task.chance),
            "n": len(entries),
            "unparsable": sum(entry["unparsable"] for entry in entries),
            # Items whose prompt was longer than the model's context: it saw their first tokens only.
            "truncated": sum(entry.get("truncated", False) for entry in entries),
        }
        extra = mean_scores([entry["extra_scores"] for entry in entries])
        if extra:
            tasks[task.harness_key]["extra_metrics"] = extra
        if task.protocol == DIALOGUE:
            # Items without released labels, scored with objects recognised by their images (protocol.py).
            tasks[task.harness_key]["labels_fallback"] = sum(entry["labels_fallback"] for entry in entries)
    results = {key: task["metrics"] for key, task in tasks.items()}
    overall = overall_statistics(statistics)
    return {
        "overall": overall_score(results),
        "overall_chance_normalized": overall_chance_normalized(results),
        "overall_statistics": overall["official"],
        "overall_evaluated": overall["evaluated"],
        "bootstrap": {"n_resamples": n_resamples, "seed": seed},
        "tasks": tasks,
    }


def model_kind(model: str | Path | AnsweringModel) -> type[AnsweringModel]:
    """The kind of model ``model`` is or names: a loaded model's class, :class:`~.api.APIChatModel` for
    ``openai:<name>``, else :class:`ChatModel` (a model folder or Hub id)."""
    if isinstance(model, AnsweringModel):
        return type(model)
    return APIChatModel if str(model).startswith(MODEL_PREFIX) else ChatModel


# What a caller leaves an API setting at when it does not set it (the command line passes every setting).
_API_DEFAULTS = {
    name: parameter.default for name, parameter in inspect.signature(APIChatModel.__init__).parameters.items()
}


def check_run_options(
    model: str | Path | AnsweringModel,
    *,
    max_batch_tokens: int | None,
    limits: dict,
    device: str | None,
    dtype: torch.dtype,
    api: dict,
    model_kwargs: dict,
) -> None:
    """Refuse, with one line and before anything is loaded, an option set for a model it cannot apply to: one its
    kind declares unsupported (``unsupported_options``), or a loading option for a model already loaded."""
    options = {"max_batch_tokens": "max_batch_tokens"} if max_batch_tokens is not None else {}
    options |= {"device": "device"} if device is not None else {}
    options |= {"dtype": "dtype"} if dtype not in (AUTO_DTYPE, torch.float32) else {}
    options |= dict.fromkeys(model_kwargs, "model_kwargs")
    options |= {name: "api" for name, value in api.items() if value is not None and value != _API_DEFAULTS.get(name)}
    if isinstance(model, AnsweringModel):
        loading = [name for name, group in options.items() if group != "max_batch_tokens"]
        loading += [name for name, limit in limits.items() if limit is not None and limit != getattr(model, name)]
        if loading:
            raise UnsupportedOptionError(
                f"{loading[0]} applies when the runner loads the model, and this {type(model).__name__} is loaded: "
                "load it with that setting"
            )
    check_options(model_kind(model), options)


def load_model(
    model: str | Path, output_dir: Path, limits: dict, device: str, dtype: torch.dtype, api: dict, **model_kwargs
) -> AnsweringModel:
    """A :class:`ChatModel` for a model folder or Hub id, an :class:`~.api.APIChatModel` for ``openai:<name>``
    (its answers cached in ``output_dir/api_cache`` unless ``api`` names a ``cache_dir``); ``limits``
    holds ``max_new_tokens`` and ``max_new_tokens_per_round`` (checked by :func:`check_run_options`)."""
    if model_kind(model) is APIChatModel:
        api = {"cache_dir": output_dir / "api_cache", **api}
        return APIChatModel.from_model_string(str(model), **limits, **api)
    return ChatModel.from_pretrained(model_location(model), **limits, device=device, dtype=dtype, **model_kwargs)


def write_outputs(output_dir: Path, summary: dict, entries_by_task: dict[DevCVTask, list[dict]]) -> None:
    if "control" not in summary:  # a control run is never a leaderboard result
        write_results_files(output_dir, {key: task["metrics"] for key, task in summary["tasks"].items()})
    write_text_atomic(output_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(output_dir / "results.md", markdown_table(summary))
    plot_scores(summary, output_dir / SCORES_PLOT)
    counting = next((entries for task, entries in entries_by_task.items() if task.accuracy_by_true_count), None)
    if counting:
        plot_count_accuracy(counting, output_dir / COUNT_PLOT, **summary.get("bootstrap", {}))


def model_location(model: str | Path) -> str:
    """A model folder (resolved) or a Hub id; a path that names no folder is an error saying so."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    text = str(model)
    # A Hub id is "name" or "owner/name"; anything else is meant as a path.
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise FileNotFoundError(f"model folder {text} does not exist")
    return text


def _output_folder(model, data_dir, output_dir, **_) -> list:
    """The folder a run writes and locks (the lock checks first that it can be written there)."""
    return [output_dir]


@locks_outputs(_output_folder)
def evaluate_devcv(
    model: str | Path | AnsweringModel,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    tasks: list[str] | None = None,
    split: str = "test",
    batch_size: int = 8,
    max_batch_tokens: int | None = None,
    limit: int | None = None,
    max_new_tokens: int | None = None,
    max_new_tokens_per_round: int | None = None,
    use_system_prompt: bool | None = None,
    stop_strings: tuple[str, ...] = STOP_STRINGS,
    truncation: str = TRUNCATE_AT_MODEL_MAX_LENGTH,
    quick: bool = False,
    device: str | None = None,
    dtype: torch.dtype | str = AUTO_DTYPE,
    progress: bool = True,
    api: dict | None = None,
    bootstrap: int = N_RESAMPLES,
    seed: int = 0,
    by: list[str] | None = None,
    control: str | None = None,
    restart: bool = False,
    **model_kwargs,
) -> dict | None:
    """Evaluate ``model`` (a model folder, a Hub id, ``openai:<name>`` or a loaded
    :class:`~.answering.AnsweringModel`) on ``tasks`` of a DevCV dataset folder and write the outputs into
    ``output_dir``; returns the summary (on rank 0; None on the other processes of a data-parallel run).

    Items already logged in ``output_dir`` by an identical run are not redone; the run holds the folder's
    output lock (:mod:`babyvlm.locking`), so a second run into it is refused. ``max_batch_tokens``
    caps a batch's padded token count (rows x longest item) besides its ``batch_size`` rows;
    ``limit`` takes each task's first items. ``use_system_prompt`` adds the authors' per-task system
    prompts meant for general-purpose models (default: on for API models, off otherwise).
    ``dtype`` ``auto`` is the official precision on an accelerator (float16) and float32 on a CPU
    (:func:`~.harness.resolve_dtype`). ``max_new_tokens`` (single turns) and ``max_new_tokens_per_round``
    (dialogue rounds) default to the leaderboard's reference wrapper's limits (a loaded model keeps its own);
    single-turn answers are cut before the first of ``stop_strings`` (default: lmms-eval's,
    :data:`~.harness.STOP_STRINGS`). ``truncation`` (``model_max_length``, as the original model code, or
    ``never``) says whether a prompt longer than the tokenizer's ``model_max_length`` keeps its first tokens; the
    items cut are counted per task. ``quick`` takes at most :data:`~.harness.QUICK_LIMIT` items per task and
    :data:`~.harness.QUICK_MAX_NEW_TOKENS` new tokens per answer, and marks the run as not official.
    ``model_kwargs`` (``device_map``, ``attn_implementation``...) go to ``from_pretrained``. ``openai:<name>`` is
    a model behind an OpenAI-compatible endpoint, with ``api`` holding :class:`~.api.APIChatModel`'s settings
    (``base_url``, ...). An option the model's kind cannot apply (``max_batch_tokens`` or ``device`` for an
    API model, ``api`` settings for a local one, loading options for a loaded model) is refused with
    :class:`~.answering.UnsupportedOptionError` before anything is loaded.
    Intervals come from ``bootstrap`` seeded resamples (``seed``); ``by`` names item columns to break each task's
    score down by (:func:`item_groups`). ``control`` (one of :data:`.controls.CONTROLS`) runs a vision control: no
    leaderboard results are written.
    A resumed run must have read the same model files and data shards (content digests in ``run.json``);
    ``restart`` discards the folder's predictions instead.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if quick:
        limit = min(limit or QUICK_LIMIT, QUICK_LIMIT)
        max_new_tokens = min(max_new_tokens or QUICK_MAX_NEW_TOKENS, QUICK_MAX_NEW_TOKENS)
        max_new_tokens_per_round = min(max_new_tokens_per_round or QUICK_MAX_NEW_TOKENS, QUICK_MAX_NEW_TOKENS)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if control is not None and control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; choose one of {', '.join(CONTROLS)}")
    api = api or {}
    limits = {"max_new_tokens": max_new_tokens, "max_new_tokens_per_round": max_new_tokens_per_round}
    check_run_options(
        model,
        max_batch_tokens=max_batch_tokens,
        limits=limits,
        device=device,
        dtype=dtype,
        api=api,
        model_kwargs=model_kwargs,
    )
    if isinstance(model, str | Path):  # the output folder was checked before its lock was taken
        check_model_path(model)
    state = process_state()
    data_dir, output_dir = Path(data_dir).resolve(), Path(output_dir)
    selected = resolve_tasks(data_dir, tasks)
    # Everything that can be checked is checked before the model loads (minutes, for a large one).
    for _, config in selected:
        task_data_files(data_dir, config, split)
    for name, value in (("max_new_tokens", max_new_tokens), ("max_new_tokens_per_round", max_new_tokens_per_round)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {', '.join(TRUNCATION_MODES)}, got {truncation!r}")
    started = time.perf_counter()
    if not isinstance(model, AnsweringModel):
        limits = {
            "max_new_tokens": MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
            "max_new_tokens_per_round": MAX_NEW_TOKENS_PER_ROUND
            if max_new_tokens_per_round is None
            else max_new_tokens_per_round,
        }
        if not str(model).startswith(MODEL_PREFIX):
            model_kwargs["truncation"] = truncation
        device = device or str(state.device)
        dtype = resolve_dtype(dtype, device) if isinstance(dtype, str) else dtype
        model = load_model(model, output_dir, limits, device, dtype, api, **model_kwargs)
    if use_system_prompt is None:  # general-purpose API models get the authors' prompts
        use_system_prompt = model.uses_api_system_prompts
    described = model.describe()
    run_config = {
        "model": described["model"],
        "data": str(data_dir),
        "split": split,
        "max_new_tokens": model.max_new_tokens,
        "max_new_tokens_per_round": model.max_new_tokens_per_round,
        "use_system_prompt": use_system_prompt,
        "dtype": described["dtype"],
        "stop_strings": list(stop_strings),
        "truncation": described["truncation"],
        "context_limit": described["context_limit"],
        "quick": quick,
    }
    if control is not None:
        run_config["control"] = {"kind": control, "seed": seed}
    if state.is_main_process:  # the one process that checks the run
        data_files = [file for _, config in selected for file in task_data_files(data_dir, config, split)]
        run_config["content"] = run_content(described["model"], data_dir, data_files, output_dir)
    # Rank 0 checks the run first; nobody appends before every process has read the logs.
    with state.main_process_first():
        log = PredictionLog(output_dir, run_config, shard=(state.process_index, state.num_processes), restart=restart)
    state.wait_for_everyone()
    datasets_by_task, not_applicable, answered, available = {}, {}, 0, {}
    loaded = time.perf_counter()
    for task, config in selected:
        dataset = load_task_split(data_dir, config, split)
        available[task.harness_key] = len(dataset)
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        if len(dataset) == 0:
            raise MissingTaskError(f"{data_dir}: task {config!r} has no items in split {split!r}")
        if control is not None:
            try:
                dataset = apply_control(dataset, control, seed)
            except ValueError as error:
                raise ValueError(f"{task.name}: {error}") from error
        try:
            answered += _evaluate_task(
                model,
                task,
                dataset,
                log,
                batch_size,
                max_batch_tokens,
                use_system_prompt,
                stop_strings,
                progress,
                state,
            )
        except NotApplicableError as error:
            logger.warning("%s: not applicable: %s", task.name, error)
            not_applicable[task.harness_key] = {
                "task": task.name,
                "display_name": task.display_name,
                "reason": str(error),
            }
            continue
        datasets_by_task[task] = dataset
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    seconds = time.perf_counter() - loaded
    logger.info(
        "answered %d items in %.2f s (%.1f items/s, %d process%s) after %.2f s loading the model",
        answered,
        seconds,
        answered / seconds,
        state.num_processes,
        "" if state.num_processes == 1 else "es",
        loaded - started,
    )
    log.merge_shards()
    log.refresh()
    entries_by_task = {}
    for task, dataset in datasets_by_task.items():
        done = log.done(task.name)
        entries_by_task[task] = [done[item_id] for item_id in dataset["id"]]
        unparsable = sum(entry["unparsable"] for entry in entries_by_task[task])
        if unparsable:
            logger.warning("%s: %d answers held no parsable answer and count as wrong", task.name, unparsable)
        truncated = sum(entry.get("truncated", False) for entry in entries_by_task[task])
        if truncated:
            logger.warning(
                "%s: %d items were longer than the model's context (%s tokens): it saw their start only",
                task.name,
                truncated,
                getattr(model, "context_limit", None),
            )
    if not entries_by_task:
        raise NotApplicableError(f"no task could be scored: {'; '.join(t['reason'] for t in not_applicable.values())}")
    groups = {task: item_groups(dataset, by) for task, dataset in datasets_by_task.items()} if by else None
    summary = summarize(entries_by_task, groups, bootstrap, seed)
    if control is not None:
        summary["control"] = run_config["control"]
    summary["scope"] = run_scope(summary, available, limit, run_config, not_applicable, bootstrap, seed)
    log.record_scope(summary["scope"])
    if not_applicable:
        summary["not_applicable"] = not_applicable
    if quick:
        summary["quick"] = {"official": False, "limit": limit, "max_new_tokens": model.max_new_tokens}
    usage = model.usage()
    if usage is not None:
        summary["api_usage"] = usage
    write_outputs(output_dir, summary, entries_by_task)
    return summary


def item_groups(dataset, columns: list[str]) -> dict[str, dict[str, str]]:
    """Per column: item id -> the item's value, read from the column itself or from the key of that name in its
    ``extra`` or ``provenance`` JSON; a column no item carries is left out with a warning."""
    groups = {}
    for column in columns:
        if column in dataset.column_names:
            values = [str(value) if value is not None else "" for value in dataset[column]]
        else:
            values = []
            for extra, provenance in zip(dataset["extra"], dataset["provenance"]):
                found = {**json.loads(provenance or "{}"), **json.loads(extra or "{}")}.get(column)
                values.append("" if found is None else str(found))
        if any(values):
            groups[column] = dict(zip(dataset["id"], values))
        else:
            logger.warning("--by %s: no item of this task carries it", column)
    return groups


def run_scope(
    summary: dict,
    available: dict[str, int],
    limit: int | None,
    run_config: dict,
    not_applicable: dict,
    bootstrap: int,
    seed: int,
) -> dict:
    """What limits a run: ``--limit``, items evaluated of those available per task, leaderboard tasks not
    evaluated (and why), dtype, the bootstrap's seed and the package version."""
    items = {
        key: {"evaluated": summary["tasks"][key]["n"] if key in summary["tasks"] else 0, "available": available[key]}
        for key in available
    }
    skipped = {key: task["reason"] for key, task in not_applicable.items()}
    for key in summary["overall_statistics"]["missing"]:
        skipped.setdefault(key, "not in the data folder or not requested")
    evaluated, total = sum(i["evaluated"] for i in items.values()), sum(i["available"] for i in items.values())
    return {
        "limit": limit,
        "partial": evaluated < total,
        "items_evaluated": evaluated,
        "items_available": total,
        "items": items,
        "items_skipped": {key: f"--limit {limit}" for key, i in items.items() if i["evaluated"] < i["available"]},
        "tasks_skipped": skipped,
        "dtype": run_config["dtype"],
        "bootstrap": bootstrap,
        "seed": seed,
        "version": package_version(),
    }


def package_version() -> str:
    try:
        return importlib.metadata.version("babyvlm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "eval",
        "Evaluate a vision-language model on DevCV.",
        [
            "babyvlm eval --model babyvlm-demo/model --data babyvlm-demo/devcv --output eval/demo",
            "babyvlm eval --model Qwen/Qwen2.5-VL-3B-Instruct --data devcv --output eval/qwen --tasks count,memory",
        ],
    )
    parser.add_argument(
        "--model",
        required=True,
        help="model folder or Hub id (any transformers image-text-to-text model with a processor), "
        "or openai:<name> for a model behind an OpenAI-compatible endpoint (see --base-url)",
    )
    parser.add_argument("--data", required=True, help="DevCV dataset folder (parquet + README.md configs)")
    parser.add_argument("--output", required=True, help="output folder (an interrupted run in it is resumed)")
    parser.add_argument("--restart", action="store_true", help="discard the output folder's predictions and start over")
    parser.add_argument(
        "--tasks", help="comma-separated tasks (canonical names, harness keys or file keys); default: all in --data"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8, help="most items per batch")
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        help="most tokens per batch (rows x longest item, images included): fits long items such as Memory "
        "dialogues in memory; default: no cap",
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N items of each task")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=N_RESAMPLES,
        metavar="N",
        help="bootstrap resamples behind each 95%% interval and non-binomial p-value",
    )
    parser.add_argument(
        "--control",
        choices=CONTROLS,
        help="vision control: each image replaced by another item's (shuffled-images) or by its mean colour "
        "(blank-images); stored as its own run, never as a leaderboard result",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples and the control")
    parser.add_argument(
        "--by",
        action="append",
        metavar="COLUMN",
        help="also score each task by an item column (e.g. source, child; repeatable): a dataset column or a "
        "key of the items' extra/provenance JSON",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a quick check that the model runs, not an official score: at most {QUICK_LIMIT} items per task and "
        f"{QUICK_MAX_NEW_TOKENS} new tokens per answer (marked so in the outputs)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="per single-turn answer")
    parser.add_argument(
        "--max-new-tokens-per-round", type=int, default=MAX_NEW_TOKENS_PER_ROUND, help="per Memory round"
    )
    parser.add_argument(
        "--system-prompts",
        action=argparse.BooleanOptionalAction,
        help="add the authors' per-task system prompts (for general-purpose models); default: on for openai: models",
    )
    parser.add_argument(
        "--stop-strings",
        default="harness",
        choices=sorted(STOP_STRING_CHOICES),
        help="harness: cut single-turn answers before lmms-eval's stop string '\\n\\n', as the leaderboard does; "
        "none: keep the whole answer",
    )
    parser.add_argument(
        "--truncation",
        default=TRUNCATE_AT_MODEL_MAX_LENGTH,
        choices=TRUNCATION_MODES,
        help="model_max_length: a prompt longer than the tokenizer's model_max_length keeps its first tokens, as "
        "the original model code (the items cut are counted in summary.json); never: give the whole prompt",
    )
    parser.add_argument(
        "--device", help="default: this process's accelerator (cuda:<local rank> under accelerate), else cpu"
    )
    parser.add_argument(
        "--dtype",
        default=AUTO_DTYPE,
        choices=[AUTO_DTYPE, *sorted(DTYPES)],
        help="auto: float16 on a GPU, as the official run, float32 on a CPU (where float16 is slow and changes a "
        "few answers); float32 keeps results independent of the batch size",
    )
    parser.add_argument("--attn-implementation", help="e.g. sdpa, eager, flash_attention_2 (default: the model's)")
    parser.add_argument("--device-map", help="e.g. auto: spread one large model over the visible GPUs")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code from the Hub")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    api = parser.add_argument_group("API models (--model openai:<name>)")
    api.add_argument("--base-url", help="the endpoint, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL)")
    api.add_argument("--api-key", help="default: $OPENAI_API_KEY")
    api.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    api.add_argument("--requests-per-minute", type=float, help="rate limit on request starts")
    api.add_argument("--max-retries", type=int, default=5, help="retries (with backoff) on 429, 5xx and timeouts")
    api.add_argument("--api-timeout", type=float, default=120.0, help="seconds to wait for one answer")
    api.add_argument("--api-cache", help="answer cache folder (default: OUTPUT/api_cache)")
    api.add_argument(
        "--price",
        type=float,
        nargs=2,
        metavar=("INPUT", "OUTPUT"),
        help="USD per million prompt and completion tokens, for the cost in the report",
    )
    add_push_arguments(parser.add_argument_group("Hub"))
    return parser


def _api_settings(args: argparse.Namespace) -> dict:
    settings = {
        "base_url": args.base_url,
        "api_key": args.api_key,
        "concurrency": args.concurrency,
        "requests_per_minute": args.requests_per_minute,
        "max_retries": args.max_retries,
        "timeout": args.api_timeout,
        "price_per_million_tokens": tuple(args.price) if args.price else None,
    }
    if args.api_cache:
        settings["cache_dir"] = Path(args.api_cache)
    return settings


EVALUATION_ERRORS = (
    KeyError,
    FileNotFoundError,
    IncompatibleModelError,
    MissingTaskError,
    RunMismatchError,
    ValueError,
    APIModelError,
    NotApplicableError,
    OutputLockedError,
)
"""What an evaluation raises for its input (model, data, output folder, settings): one line, not a traceback."""


def main(argv: list[str] | None = None) -> int:
    """``babyvlm eval``."""
    parser = _parser()
    args = parser.parse_args(argv)
    check_push_arguments(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.no_progress:
        datasets.disable_progress_bars()
    try:
        summary = evaluate_devcv(
            args.model,
            args.data,
            args.output,
            tasks=args.tasks.split(",") if args.tasks else None,
            split=args.split,
            batch_size=args.batch_size,
            max_batch_tokens=args.max_batch_tokens,
            limit=args.limit,
            max_new_tokens=args.max_new_tokens,
            max_new_tokens_per_round=args.max_new_tokens_per_round,
            use_system_prompt=args.system_prompts,
            stop_strings=STOP_STRING_CHOICES[args.stop_strings],
            truncation=args.truncation,
            quick=args.quick,
            device=args.device,
            dtype=args.dtype,
            progress=not args.no_progress,
            api=_api_settings(args),
            bootstrap=args.bootstrap,
            seed=args.seed,
            by=args.by,
            control=args.control,
            restart=args.restart,
            **{
                key: value
                for key, value in (
                    ("attn_implementation", args.attn_implementation),
                    ("device_map", args.device_map),
                    ("trust_remote_code", args.trust_remote_code or None),
                )
                if value is not None
            },
        )
    except EVALUATION_ERRORS as error:
        return fail(parser, error)
    if summary is not None:  # rank 0 of a data-parallel run
        sys.stdout.write(markdown_table(summary))
        if args.push_to_hub:
            return push_from_args(parser, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
