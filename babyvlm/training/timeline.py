"""The training stream seen from the trainer: records fed counted on every process, ``exposure.json`` in every
checkpoint and final folder, and age checkpoints.

A chat stage's collator passes each batch's exposure columns on as ``exposure_records`` (:class:`ExposureCollator`);
the trainer adds the records it trains on to its tally (:class:`ExposureCountingMixin`), so a record is counted
once per time it is fed, on the process that fed it, a partial epoch included. At each save the tallies of all
processes are gathered and summed (:meth:`ExposureCallback.total`). A text stage (``lm``, packed by TRL, where a
row is no longer a record) counts its corpus times the epochs trained.

An age checkpoint for age A is written at the end of the first step whose records reach an age at recording of at
least A months: ``<output_dir>/age_checkpoints/age-AAmo``, a complete model folder like the final one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback

from .exposure import (
    AGE_CHECKPOINTS,
    COLUMNS,
    Curriculum,
    ExposureTally,
    age_folder_name,
    age_thresholds,
    exposure_card_section,
    exposure_document,
    write_exposure,
)
from .safeguards import save_final_model

logger = logging.getLogger(__name__)
TALLY_FILE = "exposure_tally.json"
"""In a resumable checkpoint: the summed tally of the stage so far, which a resumed run starts from."""


@dataclass(kw_only=True)
class TimelineArguments:
    """A recipe's options for training along the child's timeline: the curriculum and the age checkpoints. The
    recipes' argument classes extend it (keyword-only, so that their own required fields may come first)."""

    curriculum: str = field(
        default="shuffled",
        metadata={
            "help": "order of the records: `shuffled` (the recipe's own sampling), `chronological` (by the child's "
            "age at recording, children pooled) or `child=S` (child S only, in age order); the last two need an "
            "`age_months` column"
        },
    )
    curriculum_window_months: float | None = field(
        default=None, metadata={"help": "chronological/child: shuffle (seeded) within windows of this many months"}
    )
    save_at_age_months: list[float] = field(
        default_factory=list,
        metadata={"help": "write a model folder when the stream passes each of these ages (months)"},
    )
    save_every_age_months: float | None = field(
        default=None, metadata={"help": "write a model folder every this many months of the stream's age"}
    )

    def parsed_curriculum(self) -> Curriculum:
        return Curriculum.parse(self.curriculum, self.curriculum_window_months)

    def age_checkpoints(self, curriculum: Curriculum, ages: list[float]) -> list[float]:
        """The ages to write a model folder at, for a stream whose records have ``ages``; one line when the
        stream has no order by age to pass them in."""
        if not (self.save_at_age_months or self.save_every_age_months):
            return []
        if not (curriculum.ordered and ages):
            raise ValueError("save_at_age_months/save_every_age_months need a chronological or child curriculum")
        return age_thresholds(self.save_at_age_months, self.save_every_age_months, min(ages), max(ages))


def total_over_processes(accelerator, tally: ExposureTally) -> ExposureTally:
    """The sum of every process's ``tally`` and the age range they span together (a collective: every process of
    ``accelerator`` calls it at the same point)."""
    vector = torch.tensor(tally.as_vector(), dtype=torch.float64)
    gathered = accelerator.gather(vector.to(accelerator.device)).cpu().view(-1, vector.numel())
    return ExposureTally.from_vectors(gathered.sum(0).tolist(), gathered.min(0).values.tolist())


class ExposureCollator:
    """Wraps a collator: takes the exposure columns off each record and passes them on with the batch."""

    def __init__(self, collator: Callable):
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict:
        records = [{name: feature.pop(name) for name in COLUMNS.values() if name in feature} for feature in features]
        batch = self.collator(features)
        batch["exposure_records"] = records
        return batch


class ExposureCountingMixin:
    """A Trainer that adds the records of every training batch to ``self.exposure_tally``."""

    exposure_tally: ExposureTally

    def compute_loss(self, model, inputs, *args, **kwargs):
        records = inputs.pop("exposure_records", None)
        if records is not None and model.training:
            self.exposure_tally.add_records(records)
        return super().compute_loss(model, inputs, *args, **kwargs)


class ExposureCallback(TrainerCallback):
    """Writes ``exposure.json`` (and the card with its summary) into every checkpoint, writes the age checkpoints,
    and gives the final folder's exposure (:meth:`document`).

    Args:
        trainer: the Trainer, with ``exposure_tally`` (chat stages) or ``None`` for a text stage counted by epochs.
        card: the stage's model card, to which each folder's exposure summary is appended.
        make_entry: ``(tally, epochs, steps) -> stage entry`` of this stage.
        parent_stages: the stages of the parent's lineage.
        corpus_tally: for a text stage, the tally of one pass over the corpus.
        write_extras: writes processor and the rest into a model folder (the final folder's extras).
        save_at, every: the age checkpoints (``save_at_age_months``, ``save_every_age_months``).
    """

    def __init__(
        self,
        trainer,
        card: str,
        make_entry: Callable[[ExposureTally, float, int], dict],
        parent_stages: list[dict],
        write_extras: Callable[[Path], None],
        output_dir: Path,
        corpus_tally: ExposureTally | None = None,
        ages: tuple[float, float] | None = None,
        save_at: list[float] | None = None,
        every: float | None = None,
    ):
        self.trainer, self.card, self.make_entry = trainer, card, make_entry
        self.parent_stages, self.write_extras, self.output_dir = parent_stages, write_extras, output_dir
        self.corpus_tally = corpus_tally
        self.pending = age_thresholds(save_at, every, *ages) if ages and (save_at or every) else []
        self.written: list[str] = []

    def resume(self, checkpoint: str | None) -> None:
        """Continue the tally of ``checkpoint`` (on process 0: the others start from nothing, the sum is right)."""
        path = Path(checkpoint) / TALLY_FILE if checkpoint else None
        if path is None or not path.is_file() or self.corpus_tally is not None:
            return
        saved = json.loads(path.read_text())
        if self.trainer.is_world_process_zero():
            self.trainer.exposure_tally = ExposureTally(saved["sums"], saved["age_range"])
        reached = (saved["age_range"] or [None, float("-inf")])[1]
        self.pending = [age for age in self.pending if age > reached]

    def total(self, state) -> ExposureTally:
        """The tally of every process (a collective: every process calls it at the same point)."""
        if self.corpus_tally is not None:
            return self.corpus_tally.scaled(state.epoch or 0.0)
        return total_over_processes(self.trainer.accelerator, self.trainer.exposure_tally)

    def document(self, state, tally: ExposureTally | None = None, reached: float | None = None) -> dict:
        tally = tally or self.total(state)
        entry = self.make_entry(tally, state.epoch or 0.0, state.global_step)
        return exposure_document([*self.parent_stages, entry], reached)

    def write_folder_files(self, folder: Path, document: dict) -> None:
        write_exposure(folder, document)
        (folder / "README.md").write_text(self.card.rstrip("\n") + "\n\n" + exposure_card_section(document))

    def write_final_files(self, staging: Path, document: dict) -> None:
        """The final folder's exposure and card; its age checkpoints, written during training, carried into it."""
        self.write_folder_files(staging, document)
        written = self.output_dir / AGE_CHECKPOINTS
        if written.is_dir():
            written.rename(staging / AGE_CHECKPOINTS)

    def on_save(self, args, state, control, **kwargs):
        tally = self.total(state)
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            self.write_folder_files(checkpoint, self.document(state, tally))
            (checkpoint / TALLY_FILE).write_text(json.dumps({"sums": tally.sums, "age_range": tally.age_range}))

    def on_step_end(self, args, state, control, **kwargs):
        if not self.pending:
            return
        tally = self.total(state)
        reached = tally.age_range[1] if tally.age_range else float("-inf")
        while self.pending and self.pending[0] <= reached:
            age = self.pending.pop(0)
            self.save_age_checkpoint(age, self.document(state, tally, reached=age))

    def save_age_checkpoint(self, age: float, document: dict) -> None:
        folder = self.output_dir / AGE_CHECKPOINTS / age_folder_name(age)
        if self.trainer.is_world_process_zero():
            folder.parent.mkdir(parents=True, exist_ok=True)
        model = self.trainer.model
        configs = {id(c): c for c in (model.config, model.config.get_text_config())}.values()
        caching = [(config, config.use_cache) for config in configs]
        for config, _ in caching:  # saved for inference, as the final folder is
            config.use_cache = True

        def extras(staging: Path) -> None:
            self.write_extras(staging)
            self.write_folder_files(staging, document)

        try:
            save_final_model(self.trainer, folder, extras)
        finally:
            for config, value in caching:
                config.use_cache = value
        self.written.append(folder.name)
        logger.info("age checkpoint %s (stream at %.2f months)", folder, age)

    def on_train_end(self, args, state, control, **kwargs):
        if self.pending:
            logger.warning(
                "age checkpoints not written, the stream never reached: %s months", ", ".join(map(str, self.pending))
            )
