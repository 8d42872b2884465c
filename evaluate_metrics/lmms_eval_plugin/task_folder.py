"""Write an lmms-eval task folder (for ``--include_path``) for a DevCV dataset folder.

One ``<harness_key>.yaml`` per task (``baby_pv``, ``baby_memory``, ...) pointing at the dataset
folder, plus a ``devcv.yaml`` group running them all. The folder is written next to its final
place and renamed into it, so an existing folder is always complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from babyvlm.dataset_builders.devcv.tasks import DevCVTask

from ..data import MissingTaskError, resolve_tasks, task_data_files
from ..protocol import LWL_TARGET_DELIMITER

HOOKS = "babyvlm.evaluate_metrics.lmms_eval_plugin.hooks"
GROUP = "devcv"


def _metric_list(task: DevCVTask, aggregation: str | None = None) -> str:
    lines = ["metric_list:"]
    for metric in task.metrics:
        aggregate = f"!function {HOOKS}.lwl_{metric}" if aggregation is None else aggregation
        lines += [f"  - metric: {metric}", f"    aggregation: {aggregate}", "    higher_is_better: true"]
    return "\n".join(lines)


def task_yaml(task: DevCVTask, data_files: list[str], split: str) -> str:
    """The lmms-eval task config of one DevCV task, reading its split from ``data_files``.

    The parquet files are named rather than the folder, because 🤗 datasets caches a local folder
    by its README alone (see :func:`babyvlm.evaluate_metrics.runner.load_task_split`).
    """
    head = (
        f"task: {task.harness_key}\n"
        "dataset_path: parquet\n"
        f"dataset_kwargs:\n  data_files:\n    {json.dumps(split)}: {json.dumps(data_files)}\n"
        f"test_split: {json.dumps(split)}\n"
    )
    if task.answer_type == "loglikelihood":
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
    elif task.name == "memory":
        body = (
            "output_type: generate_until_multi_round\n"
            f"doc_to_visual: !function {HOOKS}.dialogue_visual\n"
            f"doc_to_text: !function {HOOKS}.dialogue_turn\n"
            f"doc_to_target: !function {HOOKS}.doc_to_target\n"
            f"process_results: !function {HOOKS}.process_dialogue_results\n"
            # Memory items without released labels are grouped by image, so results need the images.
            "process_results_use_image: true\n" + _metric_list(task, "mean")
        )
    else:
        body = (
            "output_type: generate_until\n"
            f"doc_to_visual: !function {HOOKS}.doc_to_visual\n"
            f"doc_to_text: !function {HOOKS}.doc_to_text\n"
            f"doc_to_target: !function {HOOKS}.doc_to_target\n"
            f"process_results: !function {HOOKS}.process_results\n" + _metric_list(task, "mean")
        )
    return head + body + "\n"


def write_task_folder(
    data_dir: str | Path, output_dir: str | Path, *, split: str = "test", tasks: list[str] | None = None
) -> list[str]:
    """Write the task folder for ``tasks`` (default: all in ``data_dir``); returns the lmms-eval task names."""
    data_dir, output_dir = Path(data_dir).resolve(), Path(output_dir)
    selected = resolve_tasks(data_dir, tasks)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}."))
    try:
        for task, config in selected:
            data_files = task_data_files(data_dir, config, split)
            (staging / f"{task.harness_key}.yaml").write_text(task_yaml(task, data_files, split))
        members = "".join(f"  - {task.harness_key}\n" for task, _ in selected)
        (staging / f"{GROUP}.yaml").write_text(f"group: {GROUP}\ntask:\n{members}")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [task.harness_key for task, _ in selected]


def main(argv: list[str] | None = None) -> None:
    """``python -m babyvlm.evaluate_metrics.lmms_eval_plugin --data DIR --output TASK_DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m babyvlm.evaluate_metrics.lmms_eval_plugin",
        description="Write an lmms-eval task folder (for --include_path) for a DevCV dataset folder.",
    )
    parser.add_argument("--data", required=True, help="DevCV dataset folder")
    parser.add_argument("--output", required=True, help="task folder to write (replaced if it exists)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tasks", help="comma-separated tasks; default: all in --data")
    args = parser.parse_args(argv)
    try:
        names = write_task_folder(
            args.data, args.output, split=args.split, tasks=args.tasks.split(",") if args.tasks else None
        )
    except (KeyError, FileNotFoundError, MissingTaskError) as error:
        parser.exit(2, f"error: {error.args[0] if isinstance(error, KeyError) else error}\n")
    print(f"wrote {args.output}: tasks {', '.join(names)} and the group {GROUP!r}")
