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
from babyvlm.evaluate_metrics.devcv.tasks import DevCVTask
from tqdm.auto import tqdm

from babyvlm.chat import content_to_text, count_image_blocks
from babyvlm.command_line import command_parser, fail

from .api import MODEL_PREFIX, APIChatModel, APIModelError
from .data import MissingTaskError, load_task_split, resolve_tasks
from .devcv.items import score_item
from .devcv.scores import chance_normalized, mean_scores, overall_chance_normalized, overall_score
from .inference import ChatModel, Conversation, IncompatibleModelError, NotApplicableError
from .predictions import PredictionLog, RunMismatchError
from .preflight import check_eval_paths
from .protocol import (
    MAX_NEW_TOKENS,
    MAX_NEW_TOKENS_PER_ROUND,
    has_memory_labels,
    is_dialogue,
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

logger = logging.getLogger(__name__)


def score_entry(task: DevCVTask, record: dict, output) -> dict:
    """The prediction-log line of one answered item."""
    gold = list(record["answer"])
    if task.answer_type == "loglikelihood":
        reference, labels = None, ()
    elif is_dialogue(record):
        reference, labels = gold, memory_option_keys(record)
    elif len(gold) == 1:
        reference, labels = gold[0], ()
    else:
        raise ValueError(f"{task.name} item {record['id']!r} has no gold answer")
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
    }
    if is_dialogue(record):
        entry["labels_fallback"] = not has_memory_labels(record)
    return entry


def _prompt_size(messages: list[dict]) -> tuple[int, int]:
    """Image blocks and characters of an item's messages: a cheap stand-in for its token count."""
    return count_image_blocks(messages), sum(len(content_to_text(message["content"])) for message in messages)


def item_tokens(chat: ChatModel, record: dict) -> int:
    """About how many tokens answering ``record`` puts in one batch row: its user turns and images,
    plus room for an answer per round (Memory's last round holds the whole dialogue)."""
    if not record["messages"]:  # Looking While Listening: one image and a phrase per request
        turn = {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": " "}]}
        return chat.estimate_tokens(Conversation([turn], list(record["images"][:1]))) + max(map(len, record["choices"]))
    # The gold answers' turns stand for the model's: their template tokens count, their text is replaced.
    blank = [{"type": "text", "text": " "}]
    messages = [{**m, "content": blank} if m["role"] == "assistant" else m for m in record["messages"]]
    answers = sum(message["role"] == "assistant" for message in messages)
    per_answer = chat.max_new_tokens_per_round if is_dialogue(record) else chat.max_new_tokens
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
    chat: ChatModel,
    task: DevCVTask,
    dataset,
    log: PredictionLog,
    batch_size: int,
    max_batch_tokens: int | None,
    use_system_prompt: bool,
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
    tokens = [item_tokens(chat, dataset[index]) for index in share] if max_batch_tokens else [0] * len(share)
    with tqdm(
        total=len(ids),
        initial=len(ids) - len(pending),
        desc=task.name,
        unit="item",
        disable=not (progress and state.is_main_process),
    ) as bar:
        for batch in token_budget_batches(tokens, batch_size, max_batch_tokens):
            records = [dataset[index] for index in share[batch]]
            outputs = run_items(chat, task, records, use_system_prompt)
            log.append([score_entry(task, record, output) for record, output in zip(records, outputs)])
            bar.update(len(records) * state.num_processes)
    return len(pending)


def summarize(entries_by_task: dict[DevCVTask, list[dict]]) -> dict:
    """Task metrics with their chance levels, plus the overall scores, from the prediction entries."""
    tasks = {}
    for task, entries in entries_by_task.items():
        metrics = mean_scores([entry["scores"] for entry in entries])
        tasks[task.harness_key] = {
            "task": task.name,
            "display_name": task.display_name,
            "metrics": metrics,
            "primary_metric": task.primary_metric,
            "chance": task.chance,
            "chance_normalized": chance_normalized(metrics[task.primary_metric], task.chance),
            "n": len(entries),
            "unparsable": sum(entry["unparsable"] for entry in entries),
        }
        extra = mean_scores([entry["extra_scores"] for entry in entries])
        if extra:
            tasks[task.harness_key]["extra_metrics"] = extra
        if task.name == "memory":
            # Items without released labels, scored with objects recognised by their images (protocol.py).
            tasks[task.harness_key]["labels_fallback"] = sum(entry["labels_fallback"] for entry in entries)
    results = {key: task["metrics"] for key, task in tasks.items()}
    return {
        "overall": overall_score(results),
        "overall_chance_normalized": overall_chance_normalized(results),
        "tasks": tasks,
    }


def load_model(
    model: str | Path, output_dir: Path, limits: dict, device: str, dtype: torch.dtype, api: dict, **model_kwargs
):
    """A :class:`ChatModel` for a model folder or Hub id, an :class:`~.api.APIChatModel` for ``openai:<name>``
    (its answers cached in ``output_dir/api_cache`` unless ``api`` names a ``cache_dir``); ``limits``
    holds ``max_new_tokens`` and ``max_new_tokens_per_round``."""
    if str(model).startswith(MODEL_PREFIX):
        api = {"cache_dir": output_dir / "api_cache", **api}
        return APIChatModel.from_model_string(str(model), **limits, **api)
    return ChatModel.from_pretrained(model_location(model), **limits, device=device, dtype=dtype, **model_kwargs)


def write_outputs(output_dir: Path, summary: dict, entries_by_task: dict[DevCVTask, list[dict]]) -> None:
    write_results_files(output_dir, {key: task["metrics"] for key, task in summary["tasks"].items()})
    write_text_atomic(output_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(output_dir / "results.md", markdown_table(summary))
    plot_scores(summary, output_dir / SCORES_PLOT)
    counting = next((entries for task, entries in entries_by_task.items() if task.name == "count"), None)
    if counting:
        plot_count_accuracy(counting, output_dir / COUNT_PLOT)


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


def evaluate_devcv(
    model: str | Path | ChatModel | APIChatModel,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    tasks: list[str] | None = None,
    split: str = "test",
    batch_size: int = 8,
    max_batch_tokens: int | None = None,
    limit: int | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_new_tokens_per_round: int = MAX_NEW_TOKENS_PER_ROUND,
    use_system_prompt: bool | None = None,
    device: str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    api: dict | None = None,
    **model_kwargs,
) -> dict | None:
    """Evaluate ``model`` (a model folder, a Hub id, ``openai:<name>`` or a loaded :class:`ChatModel`) on
    ``tasks`` of a DevCV dataset folder and write the outputs into ``output_dir``; returns the summary
    (on rank 0; None on the other processes of a data-parallel run).

    Items already logged in ``output_dir`` by an identical run are not redone. ``max_batch_tokens``
    caps a batch's padded token count (rows x longest item) besides its ``batch_size`` rows;
    ``limit`` takes each task's first items. ``use_system_prompt`` adds the authors' per-task system
    prompts meant for general-purpose models (default: on for API models, off otherwise).
    ``max_new_tokens`` (single turns) and ``max_new_tokens_per_round`` (Memory) default to the
    leaderboard's reference wrapper's limits. ``model_kwargs`` (``device_map``, ``attn_implementation``...)
    go to ``from_pretrained``. ``openai:<name>`` is a model behind an OpenAI-compatible endpoint, with
    ``api`` holding :class:`~.api.APIChatModel`'s settings (``base_url``, ...).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    state = process_state()
    data_dir, output_dir = Path(data_dir).resolve(), Path(output_dir)
    selected = resolve_tasks(data_dir, tasks)
    started = time.perf_counter()
    if not isinstance(model, ChatModel | APIChatModel):
        limits = {"max_new_tokens": max_new_tokens, "max_new_tokens_per_round": max_new_tokens_per_round}
        model = load_model(model, output_dir, limits, device or str(state.device), dtype, api or {}, **model_kwargs)
    is_api = isinstance(model, APIChatModel)
    if use_system_prompt is None:
        use_system_prompt = is_api
    run_config = {
        "model": f"{MODEL_PREFIX}{model.name} @ {model.base_url}" if is_api else str(model.model.name_or_path),
        "data": str(data_dir),
        "split": split,
        "max_new_tokens": model.max_new_tokens,
        "max_new_tokens_per_round": model.max_new_tokens_per_round,
        "use_system_prompt": use_system_prompt,
        "dtype": None if is_api else str(model.model.dtype).removeprefix("torch."),
    }
    # Rank 0 checks the run first; nobody appends before every process has read the logs.
    with state.main_process_first():
        log = PredictionLog(output_dir, run_config, shard=(state.process_index, state.num_processes))
    state.wait_for_everyone()
    datasets_by_task, not_applicable, answered = {}, {}, 0
    loaded = time.perf_counter()
    for task, config in selected:
        dataset = load_task_split(data_dir, config, split)
        if limit is not None:
            dataset = dataset.select(range(min(limit, len(dataset))))
        if len(dataset) == 0:
            raise MissingTaskError(f"{data_dir}: task {config!r} has no items in split {split!r}")
        try:
            answered += _evaluate_task(
                model, task, dataset, log, batch_size, max_batch_tokens, use_system_prompt, progress, state
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
    if not entries_by_task:
        raise NotApplicableError(f"no task could be scored: {'; '.join(t['reason'] for t in not_applicable.values())}")
    summary = summarize(entries_by_task)
    if not_applicable:
        summary["not_applicable"] = not_applicable
    if is_api:
        summary["api_usage"] = model.usage()
    write_outputs(output_dir, summary, entries_by_task)
    return summary


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
        "--device", help="default: this process's accelerator (cuda:<local rank> under accelerate), else cpu"
    )
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=sorted(DTYPES),
        help="float32 keeps results independent of the batch size",
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
    return parser


DTYPES = {
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


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


def main(argv: list[str] | None = None) -> int:
    """``babyvlm eval``."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.no_progress:
        datasets.disable_progress_bars()
    try:
        check_eval_paths(args.model, args.output)
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
            device=args.device,
            dtype=DTYPES[args.dtype],
            progress=not args.no_progress,
            api=_api_settings(args),
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
    except (
        KeyError,
        FileNotFoundError,
        IncompatibleModelError,
        MissingTaskError,
        RunMismatchError,
        ValueError,
        APIModelError,
        NotApplicableError,
    ) as error:
        return fail(parser, error)
    if summary is not None:  # rank 0 of a data-parallel run
        sys.stdout.write(markdown_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
