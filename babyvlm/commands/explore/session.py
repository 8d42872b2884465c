"""What the page asks for, without Gradio: the folder, the runs and the model, as plain values.

Input that cannot be shown (not a DevCV folder, a run of another dataset or split, a missing image,
a checkpoint that does not load) becomes a message for the page; the rest of the page keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from babyvlm.evaluate_metrics.protocol import MAX_NEW_TOKENS

from .ask import Asker, default_prompt
from .dataset import DevCVFolder, ExploreError, MissingImage, TaskSplit
from .filters import Selection, page_count, page_positions, page_table, select, true_counts
from .render import item_html, runs_html
from .runs import Run, load_run, mismatch, name_apart, score_table


@dataclass
class Listing:
    """One page of the selected items."""

    header: list[str]
    rows: list[list]
    positions: list[int]
    page: int
    pages: int
    total: int
    messages: list[str] = field(default_factory=list)


@dataclass
class ItemView:
    html: str
    runs_html: str
    prompt: str
    messages: list[str] = field(default_factory=list)


class Explorer:
    """A DevCV folder with evaluation runs laid over it and, optionally, a model to ask."""

    def __init__(
        self,
        data: str | Path,
        runs: list[str | Path] = (),
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.messages: list[str] = []
        self.folder: DevCVFolder | None = None
        self.runs: list[Run] = []
        self.asker: Asker | None = None
        try:
            self.folder = DevCVFolder(data)
        except ExploreError as error:
            self.messages.append(str(error))
        for path in runs:
            try:
                self.runs.append(load_run(path))
            except ExploreError as error:
                self.messages.append(str(error))
        name_apart(self.runs)
        if model is not None:
            try:
                self.asker = Asker(model, device=device, dtype=dtype)
            except Exception as error:  # any loading failure: the page says why, browsing still works
                self.messages.append(f"cannot load the model {model}: {error}")

    @property
    def max_new_tokens(self) -> int:
        """The runs' generation limit when they agree (an unedited prompt then repeats a run's answer), else
        the evaluation's default."""
        limits = {run.config.get("max_new_tokens") for run in self.runs} - {None}
        return limits.pop() if len(limits) == 1 else MAX_NEW_TOKENS

    def _folder(self) -> DevCVFolder:
        if self.folder is None:
            raise ExploreError("no DevCV dataset folder is loaded (see the message above)")
        return self.folder

    def task_choices(self) -> list[tuple[str, str]]:
        """(display name, task name) of every task in the folder."""
        if self.folder is None:
            return []
        return [(task.display_name, name) for name, task in self.folder.tasks.items()]

    def split_choices(self, task: str) -> list[str]:
        return self._folder().splits(task)

    def count_choices(self, task: str, split: str) -> list[str]:
        return true_counts(self._folder().open(task, split))

    def runs_for(self, task_split: TaskSplit) -> tuple[list[Run], list[str]]:
        """The runs that can be laid over this task split, and why the others cannot."""
        usable, messages = [], []
        for run in self.runs:
            reason = mismatch(run, task_split)
            if reason is None:
                usable.append(run)
            elif task_split.task.name in run.entries or run.split == task_split.split:
                messages.append(reason)  # a run without this task is not news; one that disagrees is
        return usable, messages

    def listing(self, task: str, split: str, selection: Selection, page: int = 1) -> Listing:
        task_split = self._folder().open(task, split)
        runs, messages = self.runs_for(task_split)
        positions = select(task_split, runs, selection)
        pages = page_count(positions)
        page = min(max(1, int(page)), pages)
        shown = page_positions(positions, page)
        header, rows = page_table(task_split, runs, shown)
        if not positions:
            messages.append(f"no {task} {split} item matches the filters")
        return Listing(header, rows, shown, page, pages, len(positions), messages)

    def item(self, task: str, split: str, position: int) -> ItemView:
        task_split = self._folder().open(task, split)
        row = task_split.row(int(position))
        images = task_split.images(row)
        messages = [
            f"item {row['id']}: image {index + 1} is missing ({image.reason})"
            for index, image in enumerate(images)
            if isinstance(image, MissingImage)
        ]
        runs, _ = self.runs_for(task_split)
        return ItemView(
            item_html(task_split.task, row, images),
            runs_html(task_split.task, row, runs),
            default_prompt(row),
            messages,
        )

    def ask(self, task: str, split: str, position: int, prompt: str, max_new_tokens: int) -> Iterator[str]:
        if self.asker is None:
            raise ExploreError("no model is loaded: start the explorer with --model DIR")
        task_split = self._folder().open(task, split)
        images = task_split.images(task_split.row(int(position)))
        yield from self.asker.stream(prompt, images, int(max_new_tokens))

    def scores(self) -> tuple[list[str], list[list]]:
        return score_table(self.runs)
