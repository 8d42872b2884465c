"""SFTTrainer for vision-language models: a separate learning rate for the vision tower (stage 3: ViT at 1e-5, the
rest at 5e-5), the collator's data report counted per epoch (no silent training on nothing), and the inference
settings a trained checkpoint is saved with."""

from __future__ import annotations

import logging
from collections.abc import Callable

from transformers import TrainerCallback
from trl import SFTTrainer

from .collator import NothingToLearnError
from .safeguards import FiniteTrainingMixin

logger = logging.getLogger(__name__)
SHOWN_ITEMS = 5


class DataReport:
    """What the collator did to the samples of one epoch: cut to `max_length`, left without labels, skipped."""

    def __init__(self):
        self.samples = 0
        self.cut: list[str] = []
        self.no_labels: list[str] = []
        self.missing_images: list[tuple[str, str, str]] = []

    def add(self, report: dict) -> None:
        self.samples += report["samples"]
        self.cut += report["cut"]
        self.no_labels += report["no_labels"]
        self.missing_images += [tuple(entry) for entry in report["missing_images"]]

    def lines(self, max_length: int | None) -> list[str]:
        def first(items):
            return ", ".join(map(str, items[:SHOWN_ITEMS])) + (", …" if len(items) > SHOWN_ITEMS else "")

        lines = []
        if self.cut:
            lines.append(
                f"{len(self.cut)} of {self.samples} samples cut to max_length={max_length} ({first(self.cut)})"
            )
        if self.no_labels:
            lines.append(
                f"{len(self.no_labels)} of {self.samples} samples have no assistant token left to learn "
                f"({first(self.no_labels)})"
            )
        if self.missing_images:
            skipped = [f"{item}: {path}" for item, path, _ in self.missing_images]
            lines.append(f"{len(skipped)} samples skipped for an image that cannot be read ({first(skipped)})")
        return lines


class DataReportCallback(TrainerCallback):
    """Warns at each epoch's end (and at the end of a run stopped mid-epoch) with the counts of `DataReport`;
    fails the run when more than `max_unlearnable_fraction` of the samples had nothing to learn."""

    def __init__(self, trainer: BabyVLMSFTTrainer, max_unlearnable_fraction: float):
        self.trainer = trainer
        self.max_unlearnable_fraction = max_unlearnable_fraction
        self.totals = {"cut": 0, "no_labels": 0, "missing_images": 0}

    def _close_epoch(self, state) -> None:
        report, self.trainer.data_report = self.trainer.data_report, DataReport()
        if not report.samples:
            return
        for line in report.lines(self.trainer.args.max_length):
            logger.warning("epoch %.2f: %s", state.epoch or 0, line)
        for key in self.totals:
            self.totals[key] += len(getattr(report, key))
        share = len(report.no_labels) / report.samples
        if share > self.max_unlearnable_fraction:
            raise NothingToLearnError(
                f"{share:.0%} of the samples had no assistant token left to learn (more than "
                f"max_unlearnable_fraction={self.max_unlearnable_fraction}): "
                + "; ".join(report.lines(self.trainer.args.max_length))
            )

    def on_epoch_end(self, args, state, control, **kwargs):
        self._close_epoch(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._close_epoch(state)
        if any(self.totals.values()):
            logger.warning(
                "training data report: %d samples cut, %d without labels, %d skipped for a missing image",
                self.totals["cut"],
                self.totals["no_labels"],
                self.totals["missing_images"],
            )


class BabyVLMSFTTrainer(FiniteTrainingMixin, SFTTrainer):
    """`SFTTrainer` with a vision learning rate, the collator's per-epoch data report and the finite-training
    checks of :class:`~.safeguards.FiniteTrainingMixin`.

    Args:
        vision_learning_rate: learning rate of the parameters for which `is_vision_parameter(name)` holds.
        is_vision_parameter: the predicate (see `babyvlm.training.stages.vision_parameter_test`).
        max_unlearnable_fraction: largest share of an epoch's samples allowed to have no label left.
    """

    def __init__(
        self,
        *args,
        vision_learning_rate: float | None = None,
        is_vision_parameter: Callable[[str], bool] | None = None,
        max_unlearnable_fraction: float = 0.1,
        **kwargs,
    ):
        self.vision_learning_rate = vision_learning_rate
        self.is_vision_parameter = is_vision_parameter
        self.data_report = DataReport()
        super().__init__(*args, **kwargs)
        self.add_callback(DataReportCallback(self, max_unlearnable_fraction))

    def compute_loss(self, model, inputs, *args, **kwargs):
        report = inputs.pop("data_report", None)
        if report is not None and model.training:
            self.data_report.add(report)
        return super().compute_loss(model, inputs, *args, **kwargs)

    def create_optimizer(self, model=None):
        if self.vision_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        decay_names = set(self.get_decay_parameter_names(model))
        groups = []
        for vision in (False, True):
            for decays in (True, False):
                params = [
                    p
                    for n, p in model.named_parameters()
                    if p.requires_grad and self.is_vision_parameter(n) == vision and (n in decay_names) == decays
                ]
                if params:
                    group = {"params": params, "weight_decay": self.args.weight_decay if decays else 0.0}
                    if vision:
                        group["lr"] = self.vision_learning_rate  # the scheduler scales each group's own lr
                    groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


def enable_generation_cache(model) -> None:
    """Undo the Trainer's `use_cache=False` before the final save.

    The Trainer writes its training setting into the model config, so a checkpoint saved as is would
    generate without a KV cache (every new token re-encodes the whole prompt: Memory's 15-round dialogues
    ran ~10x slower).
    """
    for config in {id(config): config for config in (model.config, model.config.get_text_config())}.values():
        config.use_cache = True
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = True
