"""Training that fails safely: locked folders, a stop on a non-finite loss, a final folder that appears complete.

- :func:`training_folders`: the final folder and the checkpoints folder of a run, which the recipe locks
  (:mod:`babyvlm.locking`) for as long as it runs, so two trainings never write one folder.
- :class:`FiniteTrainingMixin`: a Trainer that stops at the first step whose loss or gradient norm is not finite,
  naming the step and the batch's items, and that never saves weights that are not finite. (The Trainer's own
  ``logging_nan_inf_filter`` hides such a loss from the log, which is how a diverged run used to log 0 and exit 0.)
- :func:`last_complete_checkpoint`: resume only from a checkpoint whose save finished.
- :func:`save_final_model`: the final folder written under a staging name and renamed once it holds everything.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import torch
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import SFTTrainer

from ..staging import move_into_place

logger = logging.getLogger(__name__)
SHOWN_ITEMS = 8


class NonFiniteTrainingError(FloatingPointError):
    """The loss, the gradient norm or the weights of a training run stopped being finite."""


def training_folders(args, training_args, *_) -> tuple[Path, Path]:
    """``output_dir`` and ``checkpoints_dir`` (default ``<output_dir>-checkpoints``) of a recipe's arguments."""
    output_dir = Path(training_args.output_dir)
    return output_dir, Path(args.checkpoints_dir or f"{output_dir}-checkpoints")


def leaves_no_empty_checkpoints_folder(train: Callable) -> Callable:
    """Decorate a recipe's ``train(args, training_args, ...)``: a run that fails before its first checkpoint removes
    the checkpoints folder it created (the Trainer creates it at the start), instead of leaving it empty."""

    @functools.wraps(train)
    def wrapped(args, training_args, *rest, **kwargs):
        checkpoints_dir = training_folders(args, training_args)[1]
        existed = checkpoints_dir.exists()
        try:
            return train(args, training_args, *rest, **kwargs)
        except BaseException:
            if not existed and checkpoints_dir.is_dir() and not any(checkpoints_dir.iterdir()):
                with suppress(OSError):  # (another process of the launch removed it first)
                    checkpoints_dir.rmdir()
            raise

    return wrapped


class FiniteTrainingMixin:
    """Stops training on a non-finite loss or gradient norm; refuses to save non-finite weights.

    The loss check costs nothing extra: the Trainer already reads every step's loss on the host for its NaN
    filter. The items of the batch come from the collator's ``data_report`` where there is one.
    """

    _batch_items: list[str] | None = None

    def training_step(self, model, inputs, *args, **kwargs):
        report = inputs.get("data_report")
        self._batch_items = report.get("items") if isinstance(report, dict) else None
        loss = super().training_step(model, inputs, *args, **kwargs)
        if not torch.isfinite(loss).all():
            self._stop(f"the loss is {loss.float().mean().item()}")
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if grad_norm is not None and not math.isfinite(float(grad_norm)):
            self._stop(f"the gradient norm is {float(grad_norm)}")
        return grad_norm

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        broken = [name for name, parameter in self.model.named_parameters() if not parameter.isfinite().all()]
        if broken:
            shown = ", ".join(broken[:SHOWN_ITEMS]) + (", …" if len(broken) > SHOWN_ITEMS else "")
            raise NonFiniteTrainingError(
                f"step {self.state.global_step}: {len(broken)} weight tensors are not finite ({shown}); "
                f"not saved to {output_dir or self.args.output_dir}"
            )
        super().save_model(output_dir, _internal_call)

    def _stop(self, what: str) -> None:
        items = self._batch_items
        batch = f"batch items {', '.join(map(str, items))}" if items else "the batch has no item ids"
        # global_step counts finished steps: this is the next one, whose update is not applied.
        raise NonFiniteTrainingError(
            f"step {self.state.global_step + 1}: {what} ({batch}); stopped before the update, nothing of this step "
            "is saved: lower the learning rate, raise warmup or check these items"
        )


class FiniteSFTTrainer(FiniteTrainingMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` with the checks of :class:`FiniteTrainingMixin` (stage 0's text-only trainer)."""


def is_complete_checkpoint(checkpoint: Path) -> bool:
    """The Trainer writes a checkpoint's ``trainer_state.json`` last, after the weights, optimizer and RNG."""
    return (checkpoint / TRAINER_STATE_NAME).is_file()


def last_complete_checkpoint(checkpoints_dir: Path) -> str | None:
    """The newest complete ``checkpoint-N`` of ``checkpoints_dir``; incomplete ones (a run killed while saving)
    are removed first, so resuming, numbering and rotation see complete checkpoints only."""
    if not checkpoints_dir.is_dir():
        return None
    complete = []
    for folder in checkpoints_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if not (folder.is_dir() and folder.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-").isdigit()):
            continue
        if is_complete_checkpoint(folder):
            complete.append(folder)
        else:
            logger.warning("removing %s: a save that did not finish (no %s)", folder, TRAINER_STATE_NAME)
            shutil.rmtree(folder)
    if not complete:
        return None
    return str(max(complete, key=lambda folder: int(folder.name.rsplit("-", 1)[1])))


def save_final_model(trainer, output_dir: Path, write_extras: Callable[[Path], None]) -> None:
    """Save the trained model, then ``write_extras(folder)`` (processor, card) on the main process, into a staging
    folder renamed to ``output_dir`` once complete: a run killed while saving leaves no folder that looks finished.

    Every process of a launch takes part in ``save_model`` (sharded models gather there), so the staging name is
    the same for all of them.
    """
    staging = output_dir.with_name(f".{output_dir.name}.tmp-final")
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(staging, ignore_errors=True)  # of a run killed while saving; the recipe holds the lock
    trainer.accelerator.wait_for_everyone()
    try:
        trainer.save_model(str(staging))
        if main:
            write_extras(staging)
            move_into_place(staging, output_dir)
    except BaseException:
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    trainer.accelerator.wait_for_everyone()
