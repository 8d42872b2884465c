"""Reading a DevCV dataset folder (``babyvlm data devcv`` output: parquet shards + README ``configs``)."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
from babyvlm.evaluate_metrics.devcv.tasks import DevCVTask, canonical_task

from babyvlm.dataset_card import check_card_header
from babyvlm.shards import check_complete_shards

logger = logging.getLogger(__name__)


class MissingTaskError(ValueError):
    """A requested task or split is not in the dataset folder."""


def _task_configs(data_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The folder's DevCV tasks (canonical name -> config name) and its configs that name no task."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist")
    if not (data_dir / "README.md").is_file():
        raise FileNotFoundError(f"{data_dir} is not a DevCV dataset folder (no README.md with a `configs` block)")
    check_card_header(data_dir)
    tasks, unknown = {}, []
    for config in datasets.get_dataset_config_names(str(data_dir)):
        try:
            tasks[canonical_task(config).name] = config
        except KeyError:
            if config != "all":  # the builder's config of every task at once
                unknown.append(config)
    return tasks, unknown


def available_tasks(data_dir: str | Path) -> dict[str, str]:
    """The DevCV tasks a dataset folder holds: canonical task name -> config name (other configs are skipped)."""
    return _task_configs(Path(data_dir))[0]


def task_data_files(data_dir: str | Path, config: str, split: str) -> list[str]:
    """The parquet files of one task's split, as the folder's README ``configs`` block lists them; a numbered
    shard set missing a member is an error naming the files."""
    data_files = datasets.load_dataset_builder(str(data_dir), config).config.data_files or {}
    if split not in data_files:
        raise MissingTaskError(f"{data_dir}: task {config!r} has no split {split!r} (splits: {', '.join(data_files)})")
    check_complete_shards(data_files[split], f"{data_dir}: task {config!r}, split {split!r}")
    return list(data_files[split])


def load_task_split(data_dir: str | Path, config: str, split: str) -> datasets.Dataset:
    """One task's split of a DevCV dataset folder.

    Loaded from its parquet files by path: 🤗 datasets keys its cache of a local folder on the
    README alone, so two folders (or a rebuilt one) with the same README would share stale rows.
    """
    return datasets.load_dataset("parquet", data_files={split: task_data_files(data_dir, config, split)}, split=split)


def resolve_tasks(data_dir: str | Path, names: list[str] | None) -> list[tuple[DevCVTask, str]]:
    """The requested tasks (all of the folder's when ``names`` is None) with their config names; a folder
    without any DevCV task is an error naming the configs it has."""
    available, unknown = _task_configs(Path(data_dir))
    if not available:
        raise MissingTaskError(f"{data_dir} holds no DevCV task (unknown configs: {', '.join(unknown) or 'none'})")
    if unknown:
        logger.warning("%s: skipping configs that are no DevCV task: %s", data_dir, ", ".join(unknown))
    if names is None:
        names = list(available)
    resolved = []
    for name in names:
        task = canonical_task(name)
        if task.name not in available:
            raise MissingTaskError(f"{data_dir} has no task {name!r} (it has: {', '.join(available) or 'none'})")
        resolved.append((task, available[task.name]))
    return resolved
