"""Evaluate a vision-language model on a DevCV dataset folder: :func:`evaluate_devcv` and ``babyvlm-eval``.

Writes into the output folder:

- ``predictions.jsonl``: one line per item (output, gold, parsed answer, item scores); resumable.
- ``results.json``: the leaderboard file ``{"results": {"baby_pv": {"acc": ...}, ...}}``, and the same
  as ``devcv_results.json``, which the leaderboard's collation finds (it globs ``**/*_results.json``).
- ``summary.json``: per task metrics, primary metric, chance, chance-normalised score, n and
  unparsable answers, plus the overall score.
- ``results.md``: the Markdown table; ``scores_vs_chance.png`` and, with Object Counting,
  ``count_accuracy_by_true_count.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import datasets
import torch
from babyvlm.dataset_builders.chat import content_to_text, count_image_blocks
from babyvlm.dataset_builders.devcv.tasks import DevCVTask
from tqdm.auto import tqdm

from .data import MissingTaskError, load_task_split, resolve_tasks
from .devcv.items import score_item
from .devcv.scores import chance_normalized, mean_scores, overall_chance_normalized, overall_score
from .inference import ChatModel, IncompatibleModelError
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


def _evaluate_task(
    chat: ChatModel,
    task: DevCVTask,
    dataset,
    log: PredictionLog,
    batch_size: int,
    use_system_prompt: bool,
    progress: bool,
) -> list[dict]:
    ids = dataset["id"]
    if len(set(ids)) != len(ids):
        duplicate = next(item_id for item_id in ids if ids.count(item_id) > 1)
        raise ValueError(f"{task.name}: item id {duplicate!r} occurs more than once")
    done = log.done(task.name)
    # Items of equal size batch without padding, which keeps attention on its fast path; results do
    # not depend on the batching, so the order only changes the speed.
    sizes = [_prompt_size(messages) for messages in dataset["messages"]]
    pending = sorted((index for index, item_id in enumerate(ids) if item_id not in done), key=sizes.__getitem__)
    with tqdm(
        total=len(ids), initial=len(ids) - len(pending), desc=task.name, unit="item", disable=not progress
    ) as bar:
        for start in range(0, len(pending), batch_size):
            records = [dataset[index] for index in pending[start : start + batch_size]]
            outputs = run_items(chat, task, records, use_system_prompt)
            log.append([score_entry(task, record, output) for record, output in zip(records, outputs)])
            bar.update(len(records))
    return [done[item_id] for item_id in ids]


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


def write_outputs(output_dir: Path, summary: dict, entries_by_task: dict[DevCVTask, list[dict]]) -> None:
    write_results_files(output_dir, {key: task["metrics"] for key, task in summary["tasks"].items()})
    write_text_atomic(output_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(output_dir / "results.md", markdown_table(summary))
    plot_scores(summary, output_dir / SCORES_PLOT)
    counting = next((entries for task, entries in entries_by_task.items() if task.name == "count"), None)
    if counting:
        plot_count_accuracy(counting, output_dir / COUNT_PLOT)


def evaluate_devcv(
    model: str | Path | ChatModel,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    tasks: list[str] | None = None,
    split: str = "test",
    batch_size: int = 8,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_new_tokens_per_round: int = MAX_NEW_TOKENS_PER_ROUND,
    use_system_prompt: bool = False,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> dict:
    """Evaluate ``model`` (a model directory or a loaded :class:`ChatModel`) on ``tasks`` of a DevCV
    dataset folder and write the outputs into ``output_dir``; returns the summary.

    Items already in ``output_dir/predictions.jsonl`` from an identical run are not redone.
    ``use_system_prompt`` adds the authors' per-task system prompts meant for general-purpose models.
    ``max_new_tokens`` (single turns) and ``max_new_tokens_per_round`` (Memory) default to the
    leaderboard's reference wrapper's limits.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    data_dir, output_dir = Path(data_dir).resolve(), Path(output_dir)
    selected = resolve_tasks(data_dir, tasks)
    if not isinstance(model, ChatModel):
        model = ChatModel.from_pretrained(
            Path(model).resolve(),
            max_new_tokens=max_new_tokens,
            max_new_tokens_per_round=max_new_tokens_per_round,
            device=device,
            dtype=dtype,
        )
    run_config = {
        "model": str(model.model.name_or_path),
        "data": str(data_dir),
        "split": split,
        "max_new_tokens": model.max_new_tokens,
        "max_new_tokens_per_round": model.max_new_tokens_per_round,
        "use_system_prompt": use_system_prompt,
    }
    log = PredictionLog(output_dir, run_config)
    entries_by_task = {}
    for task, config in selected:
        dataset = load_task_split(data_dir, config, split)
        entries_by_task[task] = _evaluate_task(model, task, dataset, log, batch_size, use_system_prompt, progress)
        unparsable = sum(entry["unparsable"] for entry in entries_by_task[task])
        if unparsable:
            logger.warning("%s: %d answers held no parsable answer and count as wrong", task.name, unparsable)
    summary = summarize(entries_by_task)
    write_outputs(output_dir, summary, entries_by_task)
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="babyvlm-eval", description="Evaluate a vision-language model on DevCV.")
    parser.add_argument(
        "--model", required=True, help="model directory (any transformers image-text-to-text model with a processor)"
    )
    parser.add_argument("--data", required=True, help="DevCV dataset folder (parquet + README.md configs)")
    parser.add_argument("--output", required=True, help="output folder (an interrupted run in it is resumed)")
    parser.add_argument(
        "--tasks", help="comma-separated tasks (canonical names, harness keys or file keys); default: all in --data"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="per single-turn answer")
    parser.add_argument(
        "--max-new-tokens-per-round", type=int, default=MAX_NEW_TOKENS_PER_ROUND, help="per Memory round"
    )
    parser.add_argument(
        "--system-prompts",
        action="store_true",
        help="add the authors' per-task system prompts (for general-purpose models; off for BabyLLaVA-V2)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="float32 keeps results independent of the batch size",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``babyvlm-eval``."""
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
            max_new_tokens=args.max_new_tokens,
            max_new_tokens_per_round=args.max_new_tokens_per_round,
            use_system_prompt=args.system_prompts,
            device=args.device,
            dtype=getattr(torch, args.dtype),
            progress=not args.no_progress,
        )
    except (
        KeyError,
        FileNotFoundError,
        IncompatibleModelError,
        MissingTaskError,
        RunMismatchError,
        ValueError,
    ) as error:
        parser.exit(2, f"babyvlm-eval: error: {error.args[0] if isinstance(error, KeyError) else error}\n")
    sys.stdout.write(markdown_table(summary))


if __name__ == "__main__":
    main()
