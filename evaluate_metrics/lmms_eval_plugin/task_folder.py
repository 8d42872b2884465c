"""Write a self-contained lmms-eval task folder (for ``--include_path``) for a DevCV dataset folder.

The folder holds what the organisers' DevCV-Toolbox holds, so a leaderboard ``model.py`` runs on it
as on theirs, and stock lmms-eval runs it without babyvlm installed::

    TASK_DIR/
      devcv.yaml                  group of every task; devcv_generation.yaml: all but Looking While Listening;
                                  devcv_replay.yaml: the generation tasks with Memory's replay variant
      <harness_key>.yaml          one task (baby_pv, baby_memory, ...; baby_memory_replay)
      data/<harness_key>.jsonl    docs: id, task, conversations, image (absolute paths), answer, choices, option_keys
      images/<harness_key>/       the items' images as lossless PNG files
      devcv_hooks.py              the task functions (:mod:`.hooks`), loaded from ...
      babyvlm_devcv_tasks/        ... a copy of the hooks, the DevCV task registry and the scoring

The folder is written next to its final place and renamed into it, so an existing folder is complete.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.tasks import DIALOGUE, LOGLIKELIHOOD, DevCVTask

from babyvlm.chat import messages_to_conversations
from babyvlm.command_line import fail
from babyvlm.staging import staged_folder

from ..data import MissingTaskError, load_task_split, resolve_tasks
from ..harness import STOP_STRINGS
from ..protocol import (
    LWL_TARGET_DELIMITER,
    MAX_NEW_TOKENS,
    MAX_NEW_TOKENS_PER_ROUND,
    memory_option_keys,
)

HOOKS = "devcv_hooks"
GROUP = "devcv"
GENERATION_GROUP = "devcv_generation"
REPLAY_GROUP = "devcv_replay"
REPLAY_SUFFIX = "_replay"
SUPPORT_PACKAGE = "babyvlm_devcv_tasks"
# The modules the hooks need, copied into the task folder with `babyvlm` renamed to SUPPORT_PACKAGE.
SUPPORT_MODULES = (
    "babyvlm.evaluate_metrics.devcv",
    "babyvlm.evaluate_metrics.devcv.tasks",
    "babyvlm.evaluate_metrics.devcv.items",
    "babyvlm.evaluate_metrics.devcv.parsing",
    "babyvlm.evaluate_metrics.devcv.scores",
    "babyvlm.evaluate_metrics.lmms_eval_plugin.hooks",
)
HOOKS_SHIM = f'''"""DevCV task functions for lmms-eval, written by babyvlm; they run without babyvlm installed."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from {SUPPORT_PACKAGE}.evaluate_metrics.lmms_eval_plugin.hooks import *  # noqa: E402,F403
'''


def _copy_support_package(folder: Path) -> None:
    """Copy :data:`SUPPORT_MODULES` (and empty parent packages) under ``folder/SUPPORT_PACKAGE``."""
    for name in SUPPORT_MODULES:
        module = importlib.import_module(name)
        parts = [SUPPORT_PACKAGE, *name.split(".")[1:]]
        is_package = Path(module.__file__).name == "__init__.py"
        target = (
            folder.joinpath(*parts, "__init__.py") if is_package else folder.joinpath(*parts[:-1], f"{parts[-1]}.py")
        )
        source = Path(module.__file__).read_text()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(re.sub(r"\bbabyvlm\.", f"{SUPPORT_PACKAGE}.", source))
    for package in folder.joinpath(SUPPORT_PACKAGE).rglob("*"):
        if package.is_dir() and not (package / "__init__.py").exists():
            (package / "__init__.py").write_text("")
    (folder / SUPPORT_PACKAGE / "__init__.py").touch()
    (folder / f"{HOOKS}.py").write_text(HOOKS_SHIM)


def _write_docs(task: DevCVTask, dataset, folder: Path, final_folder: Path) -> Path:
    """The task's docs as JSON lines, with its images as PNG files (paths as they will be once renamed)."""
    images = folder / "images" / task.harness_key
    images.mkdir(parents=True)
    path = folder / "data" / f"{task.harness_key}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with path.open("w") as handle:
        for index, record in enumerate(dataset):
            paths = []
            for k, image in enumerate(record["images"]):
                name = f"{index:06d}_{k:02d}.png"
                image.save(images / name)
                paths.append(str(final_folder / "images" / task.harness_key / name))
            doc = {
                "id": record["id"],
                "task": task.name,
                "conversations": messages_to_conversations(record["messages"]),
                "image": paths,
                "answer": list(record["answer"]),
                "choices": list(record["choices"]),
                "option_keys": memory_option_keys(record) if task.protocol == DIALOGUE else [],
            }
            handle.write(json.dumps(doc) + "\n")
    return final_folder / "data" / path.name


# lmms-eval models whose `generate_until_multi_round` answers each round from that round's input alone: their
# Memory rounds carry the dialogue so far as text (hooks.dialogue_turn).
STATELESS_DIALOGUE_MODELS = ("qwen2_vl", "qwen2_5_vl")


def _dialogue_kwargs(replay: bool) -> str:
    if replay:
        return "lmms_eval_specific_kwargs:\n  default:\n    dialogue: replay\n"
    lines = ["lmms_eval_specific_kwargs:", "  default:", "    dialogue: turns"]
    for model in STATELESS_DIALOGUE_MODELS:
        lines += [f"  {model}:", "    dialogue: transcript"]
    return "\n".join(lines) + "\n"


def _metric_list(task: DevCVTask, aggregation: str | None = None) -> str:
    lines = ["metric_list:"]
    for metric in task.metrics:
        aggregate = f"!function {HOOKS}.lwl_{metric}" if aggregation is None else aggregation
        lines += [f"  - metric: {metric}", f"    aggregation: {aggregate}", "    higher_is_better: true"]
    return "\n".join(lines)


def task_yaml(
    task: DevCVTask,
    data_file: str | Path,
    split: str,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_new_tokens_per_round: int = MAX_NEW_TOKENS_PER_ROUND,
    replay_rounds: int | None = None,
) -> str:
    """The lmms-eval task config of one DevCV task, reading its docs from ``data_file``; the generation
    limits default to the leaderboard's reference wrapper's (per answer, per Memory round).

    ``replay_rounds`` (dialogue tasks only: Memory): the replay variant, for models without
    ``generate_until_multi_round``, whose dialogues have at most that many rounds.
    """
    name = task.harness_key + (REPLAY_SUFFIX if replay_rounds else "")
    head = (
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    {json.dumps(split)}: {json.dumps(str(data_file))}\n"
        f"test_split: {json.dumps(split)}\n"
    )
    # Greedy, with lmms-eval's default stop strings (written out, so that the folder says what it runs).
    limit = task.max_new_tokens(max_new_tokens, max_new_tokens_per_round)
    until = json.dumps(list(STOP_STRINGS))
    generation = f"generation_kwargs:\n  max_new_tokens: {limit}\n  do_sample: false\n  until: {until}\n"
    if task.protocol == LOGLIKELIHOOD:
        body = (
            "output_type: multiple_choice\n"
            f"process_docs: !function {HOOKS}.split_lwl_images\n"
            f"doc_to_visual: !function {HOOKS}.doc_to_visual\n"
            f"doc_to_text: !function {HOOKS}.lwl_to_text\n"
            f"doc_to_choice: !function {HOOKS}.lwl_choices\n"
            f"doc_to_target: !function {HOOKS}.lwl_target\n"
            f"target_delimiter: {json.dumps(LWL_TARGET_DELIMITER)}\n"
            f"process_results: !function {HOOKS}.lwl_process_results\n" + _metric_list(task)
        )
    elif task.protocol == DIALOGUE:
        output_type = "generate_until_agentic" if replay_rounds else "generate_until_multi_round"
        # lmms-eval's agentic loop asks for at most `max_agentic_steps` rounds, then takes the last output as is.
        steps = f"  max_agentic_steps: {replay_rounds}\n" if replay_rounds else ""
        body = (
            f"output_type: {output_type}\n" + generation + steps + f"process_docs: !function {HOOKS}.guard_failures\n"
            f"doc_to_visual: !function {HOOKS}.dialogue_visual\n"
            f"doc_to_text: !function {HOOKS}.dialogue_turn\n"
            f"doc_to_target: !function {HOOKS}.doc_to_target\n"
            f"process_results: !function {HOOKS}.process_dialogue_results\n"
            + _dialogue_kwargs(bool(replay_rounds))
            + _metric_list(task, "mean")
        )
    else:
        body = (
            "output_type: generate_until\n" + generation + f"process_docs: !function {HOOKS}.guard_failures\n"
            f"doc_to_visual: !function {HOOKS}.doc_to_visual\n"
            f"doc_to_text: !function {HOOKS}.doc_to_text\n"
            f"doc_to_messages: !function {HOOKS}.doc_to_messages\n"
            f"doc_to_target: !function {HOOKS}.doc_to_target\n"
            f"process_results: !function {HOOKS}.process_results\n" + _metric_list(task, "mean")
        )
    return head + body + "\n"


def write_task_folder(
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    split: str = "test",
    tasks: list[str] | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    max_new_tokens_per_round: int = MAX_NEW_TOKENS_PER_ROUND,
    limit: int | None = None,
) -> list[str]:
    """Write the task folder for ``tasks`` (default: all in ``data_dir``; ``limit``: each task's first items, the
    items ``babyvlm eval --limit`` takes); returns the lmms-eval task names (those of the groups; Memory's replay
    variant, ``baby_memory_replay``, is written beside it)."""
    data_dir, output_dir = Path(data_dir).resolve(), Path(output_dir).resolve()
    selected = resolve_tasks(data_dir, tasks)
    limits = (max_new_tokens, max_new_tokens_per_round)
    generation = [task.harness_key for task, _ in selected if task.protocol != LOGLIKELIHOOD]
    replayed = []
    with staged_folder(output_dir, overwrite=True) as staging:
        _copy_support_package(staging)
        for task, config in selected:
            dataset = load_task_split(data_dir, config, split)
            if limit is not None:
                dataset = dataset.select(range(min(limit, len(dataset))))
            data_file = _write_docs(task, dataset, staging, output_dir)
            (staging / f"{task.harness_key}.yaml").write_text(task_yaml(task, data_file, split, *limits))
            if task.protocol == DIALOGUE:
                rounds = max(len(answer) for answer in dataset["answer"])
                replay = task_yaml(task, data_file, split, *limits, replay_rounds=rounds)
                (staging / f"{task.harness_key}{REPLAY_SUFFIX}.yaml").write_text(replay)
                replayed.append(task.harness_key)
        for group, members in (
            (GROUP, [task.harness_key for task, _ in selected]),
            (GENERATION_GROUP, generation),
            (REPLAY_GROUP, [key + REPLAY_SUFFIX if key in replayed else key for key in generation]),
        ):
            listed = "".join(f"  - {key}\n" for key in members)
            (staging / f"{group}.yaml").write_text(f"group: {group}\ntask:\n{listed}")
    return [task.harness_key for task, _ in selected]


def main(argv: list[str] | None = None) -> int:
    """``python -m babyvlm.evaluate_metrics.lmms_eval_plugin --data DIR --output TASK_DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m babyvlm.evaluate_metrics.lmms_eval_plugin",
        description="Write a self-contained lmms-eval task folder (for --include_path) for a DevCV dataset folder.",
    )
    parser.add_argument("--data", required=True, help="DevCV dataset folder")
    parser.add_argument("--output", required=True, help="task folder to write (replaced if it exists)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tasks", help="comma-separated tasks; default: all in --data")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help="per single-turn answer")
    parser.add_argument(
        "--max-new-tokens-per-round", type=int, default=MAX_NEW_TOKENS_PER_ROUND, help="per Memory round"
    )
    args = parser.parse_args(argv)
    try:
        names = write_task_folder(
            args.data,
            args.output,
            split=args.split,
            tasks=args.tasks.split(",") if args.tasks else None,
            max_new_tokens=args.max_new_tokens,
            max_new_tokens_per_round=args.max_new_tokens_per_round,
        )
    except (KeyError, FileNotFoundError, MissingTaskError) as error:
        return fail(parser, error)
    groups = ", ".join(repr(group) for group in (GROUP, GENERATION_GROUP, REPLAY_GROUP))
    print(f"wrote {args.output}: tasks {', '.join(names)} and the groups {groups}")
    return 0
